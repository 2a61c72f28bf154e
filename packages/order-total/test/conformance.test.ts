import { orderSuite } from '@consul/testkit/order'
import { setup } from './fixtures/setup.js'

orderSuite(setup)
