import { psync } from '@consul/psync'
import { orderSuite, orderSuiteTeeth } from '@consul/testkit/order'
import { setup } from './fixtures/setup.js'

orderSuite(setup)
// The suite rejects every broken Order it ships (so passing it means something).
orderSuiteTeeth({ psync })
