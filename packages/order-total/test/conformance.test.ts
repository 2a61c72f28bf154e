import { orderSuite } from '@consul/testkit/order'
import { totalOrder } from '../src/index.js'

orderSuite({ name: 'order-total', order: () => totalOrder() })
