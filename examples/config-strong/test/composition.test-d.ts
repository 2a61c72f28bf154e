/** The strong stack provides what Recovery requires (`needsMembership` stands in for it). */
import { defineProtocol, FAILURE_DETECTION, MEMBERSHIP, PSYNC } from '@consul/xkernel'
import { expectTypeOf, test } from 'vitest'
import { strongStack } from '../src/index.js'

const needsMembership = defineProtocol({
  name: 'recovery',
  requires: [PSYNC, FAILURE_DETECTION, MEMBERSHIP],
  create: () => ({ open: () => ({ controls: {} }) }),
})

test('a strong stack takes Recovery', () => {
  const withRecovery = strongStack().use(needsMembership)
  expectTypeOf(withRecovery.start).toBeFunction()
})
