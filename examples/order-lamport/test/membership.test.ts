/**
 * The Lamport Order under the real strong stack — Failure Detection and Membership deciding
 * real exclusions instead of the Order suite's emulated one: a third-party Order built on the
 * public interfaces only keeps its guarantees across agreed view changes (a bounded slice of
 * `@consul/testkit/membership`).
 */
import { divider } from '@consul/divider'
import { failureDetection } from '@consul/failure-detection'
import { membership } from '@consul/membership'
import { primaryPartition, viewAgreement } from '@consul/membership/checkers'
import { psync } from '@consul/psync'
import { membershipSuite } from '@consul/testkit/membership'
import { lamportOrder } from '../src/index.js'

membershipSuite(
  {
    name: 'membership + order-lamport',
    psync: (o) => psync(o),
    divider: () => divider(),
    failureDetection: (o) => failureDetection(o),
    membership: () => membership(),
    order: () => lamportOrder(),
    checkers: (groups) => [viewAgreement, primaryPartition(groups)],
  },
  { seeds: 2 },
)
