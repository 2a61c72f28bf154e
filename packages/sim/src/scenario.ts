/**
 * Scenarios: a whole simulated test in one object — the stack, the nodes, the setup (open
 * groups), the workload, the faults (none, a swarm drawn from the seed, or a hand-written
 * schedule) and the invariant checkers. `runScenario` runs one seed and returns a summary
 * the CLI prints; the same seed gives the same trace hash.
 */
import type { CapabilityMap, NodeId, Stack } from '@consul/xkernel'
import type { Checker, Violation } from './checkers.js'
import type { LinkConfig } from './network.js'
import { type DiskOptions, Simulation } from './simulation.js'
import { applyFaultPlan, describePlan, drawSwarm, type SwarmOptions } from './swarm.js'

export interface Scenario<Prov extends CapabilityMap = CapabilityMap> {
  readonly name: string
  /** Default node count (the CLI's `--nodes` overrides it). */
  readonly nodes?: number
  /** Virtual length of the run in ms. */
  readonly durationMs: number
  /** The protocol stack every node runs. */
  stack(): Stack<Prov>
  /** Link defaults before any fault. */
  readonly network?: Partial<LinkConfig>
  readonly disk?: DiskOptions
  /**
   * `'none'` (default), `'swarm'` (every fault class drawn from the seed), swarm options
   * (choose the fault classes), or a function that schedules faults itself.
   */
  readonly faults?:
    | 'none'
    | 'swarm'
    | Omit<SwarmOptions, 'durationMs'>
    | ((sim: Simulation<Prov>) => void)
  readonly groupOptions?: (
    port: string,
    node: NodeId,
  ) => Readonly<Record<string, unknown>> | undefined
  /** After every host started: open groups. */
  setup?(sim: Simulation<Prov>): void | Promise<void>
  /** Schedule the work (`sim.every`, `sim.at`). */
  workload?(sim: Simulation<Prov>): void | Promise<void>
  /** Checkers run at the end of the run. */
  readonly checkers?: readonly Checker[]
}

/** Identity, for typing: `export default defineScenario({ … })`. */
export function defineScenario<Prov extends CapabilityMap>(
  scenario: Scenario<Prov>,
): Scenario<Prov> {
  return scenario
}

export interface ScenarioResult {
  readonly scenario: string
  readonly seed: number
  readonly nodes: number
  readonly ok: boolean
  readonly violations: readonly Violation[]
  /** An exception that escaped protocol or scenario code, if any. */
  readonly error?: string
  readonly traceHash: string
  readonly events: number
  readonly virtualMs: number
  /** The fault environment, one line. */
  readonly environment: string
}

export interface RunScenarioOptions {
  readonly seed: number
  readonly nodes?: number
}

export async function runScenario<Prov extends CapabilityMap>(
  scenario: Scenario<Prov>,
  options: RunScenarioOptions,
): Promise<ScenarioResult> {
  const nodes = options.nodes ?? scenario.nodes ?? 3
  const sim = new Simulation<Prov>({
    seed: options.seed,
    nodes,
    stack: scenario.stack(),
    ...(scenario.network === undefined ? {} : { network: scenario.network }),
    ...(scenario.disk === undefined ? {} : { disk: scenario.disk }),
    ...(scenario.groupOptions === undefined ? {} : { groupOptions: scenario.groupOptions }),
  })
  let environment = 'no faults'
  let error: string | undefined
  try {
    await sim.start()
    await scenario.setup?.(sim)
    const faults = scenario.faults ?? 'none'
    if (typeof faults === 'function') {
      faults(sim)
      environment = 'scripted faults'
    } else if (faults !== 'none') {
      const swarmOptions = faults === 'swarm' ? {} : faults
      const plan = drawSwarm(sim.random.fork('swarm'), sim.nodes, {
        ...swarmOptions,
        durationMs: scenario.durationMs,
      })
      applyFaultPlan(sim, plan)
      environment = describePlan(plan)
    }
    await scenario.workload?.(sim)
    await sim.run({ until: scenario.durationMs })
  } catch (e) {
    error = describeError(e)
  }
  if (error === undefined && sim.errors.length > 0) error = describeError(sim.errors[0])
  const violations = sim.check(scenario.checkers ?? [])
  const stats = sim.stats()
  return {
    scenario: scenario.name,
    seed: options.seed,
    nodes,
    ok: error === undefined && violations.length === 0,
    violations,
    ...(error === undefined ? {} : { error }),
    traceHash: sim.traceHash(),
    events: stats.events,
    virtualMs: stats.virtualMs,
    environment,
  }
}

/** One summary line for a result. */
export function formatResult(result: ScenarioResult, wallMs?: number): string {
  const head = `seed=${result.seed} ${result.ok ? 'ok' : 'FAIL'} nodes=${result.nodes} events=${result.events} virtual=${Math.round(result.virtualMs)}ms`
  const wall = wallMs === undefined ? '' : ` wall=${Math.round(wallMs)}ms`
  const tail = ` hash=${result.traceHash} env: ${result.environment}`
  if (result.ok) return head + wall + tail
  const first = result.error ?? `${result.violations[0]!.checker}: ${result.violations[0]!.message}`
  const more =
    result.violations.length > 1 ? ` (+${result.violations.length - 1} more violations)` : ''
  return `${head}${wall}${tail}\n  ${first}${more}`
}

function describeError(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e)
}
