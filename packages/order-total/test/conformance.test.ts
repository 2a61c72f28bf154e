import { psync } from '@consul/psync'
import { orderSuite } from '@consul/testkit/order'
import { totalOrder } from '../src/index.js'

orderSuite({ name: 'order-total', psync, order: () => totalOrder() })
