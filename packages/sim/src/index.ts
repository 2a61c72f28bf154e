/**
 * @packageDocumentation
 * `@consul/sim` — deterministic simulation of whole Consul clusters: real protocol code on
 * virtual time, a seeded network with loss, duplication, reordering, corruption (dropped by
 * the endpoint's integrity check), delay, partitions and clogging, crashes with unsynced
 * writes lost (and optionally torn or corrupted records), pauses, clock drift and jumps;
 * a recorder, invariant-checker plumbing, swarm testing and the `consul-sim` CLI. Same seed ⇒ same trace hash.
 *
 * @example
 * ```ts
 * import { Simulation, noCreation, noDuplication } from '@consul/sim'
 *
 * const sim = new Simulation({ seed: 7, nodes: 3, stack: myStack, network: { loss: 0.1 } })
 * await sim.start()
 * await sim.openAll({ port: 'demo' })
 * sim.every(10, 1_000, () => sim.host('n1').group('demo')!.get(FLOOD).send('hi'))
 * sim.at(300, () => sim.crash('n2'))
 * sim.at(600, () => sim.restart('n2'))
 * await sim.run({ until: 2_000 })
 * console.log(sim.check([noCreation, noDuplication]), sim.traceHash())
 * ```
 */
export {
  type CheckContext,
  type Checker,
  noCreation,
  noDuplication,
  runCheckers,
  type Violation,
} from './checkers.js'
export { type Distribution, describeDistribution, dist, sample } from './distributions.js'
export { type DeclaredRecord, History, type HistoryRecord, type RecordKind } from './history.js'
export {
  defaultLink,
  describeLink,
  type LinkConfig,
  type NetworkStats,
  SimNetwork,
} from './network.js'
export {
  defineScenario,
  formatResult,
  type RunScenarioOptions,
  runScenario,
  type Scenario,
  type ScenarioResult,
} from './scenario.js'
export {
  type DiskFaults,
  type DiskOptions,
  nodeIds,
  type RunOptions,
  Simulation,
  type SimulationOptions,
  type SimulationStats,
} from './simulation.js'
export {
  applyFaultPlan,
  describePlan,
  drawSwarm,
  type FaultAction,
  type FaultPlan,
  type SwarmOptions,
} from './swarm.js'
export { TraceHash } from './trace-hash.js'
