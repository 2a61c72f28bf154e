/**
 * `@consul/testkit/order` — the conformance suite for Order protocols (specification v1 in
 * `@consul/xkernel`). It runs the Order under test on Psync in `@consul/sim`, over many
 * seeds, with Psync pruning its log, and checks (`order/checks.ts`, one check per invariant):
 *
 * - total-order agreement from the replicas' actual delivery sequences (positions are checked
 *   to run 1..n in delivery order, not used for alignment); semantic agreement on every
 *   conflicting pair; equal delivered sets at every wave boundary (semantic orders);
 * - no duplication and no creation of commands;
 * - causal order against Psync's graph as the recorder saw it: a predecessor the replica
 *   never delivered is a violation; only what its own checkpoint covered may be skipped;
 * - validity: every `'safe'` acknowledgement reaches every replica of the final view, at every
 *   seed; every `'agreed'` one too unless its submitter was excluded (agreed delivery is not
 *   uniform) — including across a crash right after a replica delivered its own command;
 * - liveness once faults heal; an agreed exclusion taking effect at the same point
 *   everywhere; checkpoint/restore continuing with exactly the commands after it; a replica
 *   restarted after pruning without a covering checkpoint stopping with `WAVE_GAP`.
 *
 * ```ts
 * import { divider } from '@consul/divider'
 * import { psync } from '@consul/psync'
 * import { orderSuite, orderSuiteTeeth } from '@consul/testkit/order'
 * import { lamportOrder } from '../src/index.js'
 * orderSuite({ name: 'lamport', psync, divider, order: () => lamportOrder() }) // v2: with the Divider
 * orderSuiteTeeth({ psync }) // the suite rejects each broken Order it ships
 * ```
 */
export {
  BROKEN_ORDER_FAULTS,
  type BrokenOrderFault,
  brokenOrder,
  EXPECTED_CHECK,
  referenceOrder,
} from './order/broken.js'
export { campaignRun, runOrderCampaign } from './order/campaign.js'
export { CHECKS, type CheckName, type CheckOptions, checkWorld } from './order/checks.js'
export {
  type Coverage,
  type Incarnation,
  nodesFor,
  type OrderCaps,
  type OrderSetup,
  orderScenario,
  type Pruning,
  type ScenarioKind,
  type Submission,
  type World,
} from './order/harness.js'
export { orderPrimarySuite } from './order/primary-suite.js'
export { type OrderRun, runOrderScenario } from './order/run.js'
export { orderSuite, orderSuiteTeeth, pruningFor } from './order/suite.js'
