/** No ordering outside the primary partition: the Order follows `membership.primary`. */
import { orderPrimarySuite } from '@consul/testkit/order'
import { setup } from './fixtures/setup.js'

orderPrimarySuite(setup)
