/** The strong stack provides what Recovery requires, and Recovery is in it. */
import { defineCommands, stateMachine } from '@consul/dispatcher'
import { DISPATCHER, defineProtocol, MEMBERSHIP, RECOVERY } from '@consul/xkernel'
import { expectTypeOf, test } from 'vitest'
import { strongStack } from '../src/index.js'

const machine = stateMachine({
  initial: () => 0,
  commands: defineCommands({ add: (s: number, n: number) => s + n }),
})

const needsAll = defineProtocol({
  name: 'needs-all',
  requires: [MEMBERSHIP, DISPATCHER, RECOVERY],
  create: () => ({ open: () => ({ controls: {} }) }),
})

test('a strong stack provides Membership, the Dispatcher and Recovery', () => {
  const extended = strongStack({ machine }).use(needsAll)
  expectTypeOf(extended.start).toBeFunction()
})
