import { psync } from '@consul/psync'
import { orderSuite } from '@consul/testkit/order'
import { lamportOrder } from '../src/index.js'

orderSuite({ name: 'order-lamport', psync, order: () => lamportOrder() })
