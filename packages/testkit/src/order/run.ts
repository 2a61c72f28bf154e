/**
 * One run of a scenario kind over one seed, checked: what the suite's tests and the campaign
 * both call. Kind-specific expectations (the exclusion took effect everywhere, the restored
 * replica continued, …) are checked here beside `checkWorld`.
 */
import { runScenario } from '@consul/sim'
import { checkWorld } from './checks.js'
import {
  nodesFor,
  type OrderSetup,
  orderScenario,
  type Pruning,
  type ScenarioKind,
  type World,
} from './harness.js'

export interface OrderRun {
  readonly kind: ScenarioKind
  readonly pruning: Pruning
  readonly seed: number
  /** Problems found, each `[check] message`; empty when the run passed. */
  readonly problems: readonly string[]
  /** The fault environment, one line. */
  readonly environment: string
  /**
   * Membership runs: the excluded member delivered one of its own commands that the cut then
   * discarded (the non-uniform case the `'safe'` level exists for).
   */
  readonly nonUniform: boolean
  readonly world: World
}

export async function runOrderScenario(
  setup: OrderSetup,
  kind: ScenarioKind,
  pruning: Pruning,
  seed: number,
): Promise<OrderRun> {
  const { scenario, world } = orderScenario(setup, kind, pruning)
  const result = await runScenario(scenario, { seed, nodes: nodesFor(kind, seed) })
  const w = world()
  const sim = w.sim!
  const problems: string[] = []
  if (result.error !== undefined) problems.push(`[run] ${result.error}`)
  let targets = sim.history.upAtEnd(sim.nodes).filter((n) => !w.excluded.has(n))
  if (kind === 'gap') targets = targets.filter((n) => n !== 'n3')
  problems.push(...checkWorld(setup, w, sim.history, { targets, everySubmitted: kind === 'calm' }))
  if (kind === 'membership') {
    if (w.exclusionPoints.size !== 3)
      problems.push(
        `[membership] only ${[...w.exclusionPoints.keys()].join(',')} applied the exclusion of n4`,
      )
    const n1 = [...w.incarnations.values()].find((i) => i.node === 'n1')
    const at = w.exclusionPoints.get('n1') ?? Number.POSITIVE_INFINITY
    if (n1 === undefined || n1.deliveries.length <= at + 10)
      problems.push('[membership] the group made no progress after excluding n4')
  }
  if (kind === 'checkpoint') {
    const restored = [...w.incarnations.values()].find(
      (i) => i.node === 'n2' && i.incarnation === 1,
    )
    if (restored?.base === undefined)
      problems.push(
        '[checkpoint] n2 was not restored from a checkpoint (no wave boundary between 700 and 880 ms?)',
      )
    else if (restored.deliveries.length === 0)
      problems.push('[checkpoint] n2 delivered nothing after it was restored')
  }
  const cut = w.excluded.get('n4')
  const nonUniform =
    cut !== undefined &&
    [...w.incarnations.values()].some(
      (i) =>
        i.node === 'n4' &&
        i.deliveries.some(
          (d) => d.sender === 'n4' && Number(d.message.slice(d.message.lastIndexOf(':') + 1)) > cut,
        ),
    )
  return { kind, pruning, seed, problems, environment: w.environment, nonUniform, world: w }
}
