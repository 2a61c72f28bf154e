/** The key mode (`keysOf`) passes the Order conformance suite, conflicts as `keysOf` says. */
import { orderSuite } from '@consul/testkit/order'
import { keyedSetup } from './fixtures/keyed-setup.js'

orderSuite(keyedSetup)
