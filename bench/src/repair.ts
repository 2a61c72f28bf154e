/**
 * Repair after a heal (simulated): 7 members, 30 % loss on every link, partitions and clogs
 * that come and go while everyone sends, then every partition and clog healed at once (the
 * loss stays). Reported: the simulated time from the heal until every message anyone sent is
 * delivered by every member, p50 / p99 / max over many seeds, for 3 s and 10 s of faults.
 * Aim: p99 ≤ 1 s. (Simulated time: the figures do not depend on the machine.)
 */
import { measureRepair } from '../../packages/psync/test/fixtures/repair.js'

const percentile = (xs: readonly number[], p: number) => {
  const sorted = [...xs].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!
}

export async function benchRepair(): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  for (const [label, healAt, seeds] of [
    ['faults3s', 3_000, 200],
    ['faults10s', 10_000, 50],
  ] as const) {
    const times: number[] = []
    let unconverged = 0
    for (let seed = 1; seed <= seeds; seed++) {
      const r = await measureRepair(seed, { healAt })
      times.push(r.convergedMs)
      if (!r.converged) unconverged++
    }
    out[`${label}Seeds`] = seeds
    out[`${label}HealToDeliveredP50Ms`] = Math.round(percentile(times, 0.5))
    out[`${label}HealToDeliveredP99Ms`] = Math.round(percentile(times, 0.99))
    out[`${label}HealToDeliveredMaxMs`] = Math.round(Math.max(...times))
    out[`${label}Unconverged`] = unconverged
  }
  return out
}
