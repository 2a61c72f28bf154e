/**
 * `@consul/testkit/membership` — the conformance suite for Membership protocols (the
 * `MembershipControl` of `@consul/xkernel`). It runs the whole strong stack — Psync, the
 * Divider, Failure Detection, the Membership under test, an Order — in `@consul/sim`, one
 * aspect per fault script (crashes of 1..f of n, concurrent crashes, a false suspicion, a
 * partition and its heal, a one-way and a flapping link, a stalled member, a random swarm),
 * and checks every run for view agreement, the primary partition, total-order agreement
 * across views, the validity of every `'safe'` acknowledgement, causal order, liveness after
 * the faults heal, and what the aspect promises (who leaves, who does not, who ends excluded).
 *
 * ```ts
 * import { divider } from '@consul/divider'
 * import { failureDetection } from '@consul/failure-detection'
 * import { membership } from '@consul/membership'
 * import { primaryPartition, viewAgreement } from '@consul/membership/checkers'
 * import { totalOrder } from '@consul/order-total'
 * import { psync } from '@consul/psync'
 * import { membershipSuite } from '@consul/testkit/membership'
 * membershipSuite({
 *   name: 'membership', psync, divider, failureDetection, membership: () => membership(),
 *   order: () => totalOrder(), checkers: (groups) => [viewAgreement, primaryPartition(groups)],
 * })
 * ```
 */
export { BROKEN_MEMBERSHIPS, type BrokenMembership, brokenMembership } from './membership/broken.js'
export { membershipCampaignAspect, runMembershipCampaign } from './membership/campaign.js'
export {
  MEMBERSHIP_ASPECTS,
  type MembershipAspect,
  type MembershipRun,
  type MembershipSetup,
  type MembershipWorld,
  runMembershipScenario,
  SUSPECT_AFTER_MS,
} from './membership/harness.js'
export {
  BROKEN_MEMBERSHIP_CAUGHT,
  MEMBERSHIP_REGRESSIONS,
  membershipSuite,
  membershipSuiteTeeth,
} from './membership/suite.js'
