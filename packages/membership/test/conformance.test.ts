/**
 * The Membership conformance suite over the real strong stack, under both Orders (a bounded
 * slice: `pnpm campaign:membership` runs ≥ 10,000 seeds), and the suite's teeth: it rejects
 * a Membership that decides alone and one that decides without a majority.
 */
import { membershipSuite, membershipSuiteTeeth } from '@consul/testkit/membership'
import { strongSemantic, strongTotal } from './fixtures/setup.js'

membershipSuite(strongTotal, { seeds: 3 })
membershipSuite(strongSemantic, { seeds: 2 })
membershipSuiteTeeth(strongTotal)
