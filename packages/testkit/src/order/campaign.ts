/**
 * The campaign: the suite's scenario kinds over a long range of seeds, pruning always on —
 * what `pnpm campaign` runs (≥ 2,000 seeds per Order), where the suite's own tests run a
 * bounded slice. Each seed picks its kind and pruning mode, so a range covers them all, and a
 * failing seed is replayed by running that one seed again.
 */
import type { OrderSetup, Pruning, ScenarioKind } from './harness.js'
import { type OrderRun, runOrderScenario } from './run.js'

const ROTATION: readonly ScenarioKind[] = [
  'crash',
  'calm',
  'durability',
  'crash',
  'membership',
  'checkpoint',
]

/** The kind and pruning mode seed `seed` runs in the campaign. */
export function campaignRun(seed: number): { kind: ScenarioKind; pruning: Pruning } {
  const kind = seed % 97 === 0 ? 'gap' : ROTATION[seed % ROTATION.length]!
  return { kind, pruning: Math.floor(seed / ROTATION.length) % 2 === 0 ? 'checkpoints' : 'retain' }
}

/** Runs seeds `from..to` (inclusive); `onRun` sees each result as it comes. */
export async function runOrderCampaign(
  setup: OrderSetup,
  from: number,
  to: number,
  onRun: (run: OrderRun) => void,
): Promise<OrderRun[]> {
  const failed: OrderRun[] = []
  for (let seed = from; seed <= to; seed++) {
    const { kind, pruning } = campaignRun(seed)
    const run = await runOrderScenario(setup, kind, pruning, seed)
    onRun(run)
    if (run.problems.length > 0) failed.push(run)
  }
  return failed
}
