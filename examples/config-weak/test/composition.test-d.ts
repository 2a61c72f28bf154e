/**
 * Composition is typed: Recovery requires the strong membership capability, so a weak stack
 * given Recovery does not compile. (`needsMembership` stands in for `@consul/recovery`, which
 * declares the same requirement.)
 */
import { defineProtocol, FAILURE_DETECTION, MEMBERSHIP, PSYNC } from '@consul/xkernel'
import { expectTypeOf, test } from 'vitest'
import { weakStack } from '../src/index.js'

const needsMembership = defineProtocol({
  name: 'recovery',
  requires: [PSYNC, FAILURE_DETECTION, MEMBERSHIP],
  create: () => ({ open: () => ({ controls: {} }) }),
})

test('a weak stack with Recovery fails to compile', () => {
  // @ts-expect-error — the weak configuration provides no 'membership' capability
  weakStack().use(needsMembership)
  expectTypeOf(weakStack).toBeFunction()
})
