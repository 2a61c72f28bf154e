/**
 * Composition is typed: Recovery requires the strong membership capability, so a weak stack
 * given Recovery does not compile.
 */
import { defineCommands, stateMachine } from '@consul/dispatcher'
import { recovery } from '@consul/recovery'
import { expectTypeOf, test } from 'vitest'
import { weakStack } from '../src/index.js'

const machine = stateMachine({
  initial: () => 0,
  commands: defineCommands({ add: (s: number, n: number) => s + n }),
})

test('a weak stack with Recovery fails to compile', () => {
  // @ts-expect-error — the weak configuration provides no 'membership' capability
  weakStack({ machine }).use(recovery())
  expectTypeOf(weakStack).toBeFunction()
})
