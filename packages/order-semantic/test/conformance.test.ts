import { psync } from '@consul/psync'
import { orderSuite } from '@consul/testkit/order'
import { semanticOrder } from '../src/index.js'

// Byte 0 is the class rank: a mix of three commuting classes, most of them rank 0 so early
// delivery is exercised; rank 3 conflicts with every other class (the barrier).
const classOf = (command: Uint8Array) => command[0] ?? 0
const text = new TextEncoder()

orderSuite({
  name: 'order-semantic',
  psync,
  order: () => semanticOrder({ classOf }),
  conflicts: (a, b) => classOf(a) !== classOf(b),
  command: (random, node, n) => {
    const draw = random.next()
    const rank = draw < 0.5 ? 0 : draw < 0.75 ? 1 : 2
    return Uint8Array.of(rank, ...text.encode(`${node}#${n}`))
  },
  barrier: () => Uint8Array.of(3, ...text.encode('barrier')),
})
