/**
 * `--order semantic` (the keyed order: commands on different keys commute) against a real
 * 3-process cluster under SIGKILL and restarts, with ordered reads: linearizability is
 * local — a history is linearizable iff each key's is — so the keyed order must keep the
 * whole history linearizable, and the replicas must end with equal states.
 */
import { check, kvModel } from '@consul/linearizability'
import { afterEach, describe, expect, it } from 'vitest'
import { type Cluster, startCluster } from '../src/cluster.js'
import { runChaos } from './support/chaos.js'

const DURATION = Number(process.env.DIRECTORY_CHAOS_MS ?? 12_000)
let cluster: Cluster | undefined
afterEach(async () => {
  await cluster?.stop()
  cluster = undefined
})

describe.sequential('--order semantic under SIGKILL and restarts', () => {
  it('the history is linearizable and the replicas end equal', async () => {
    cluster = await startCluster({
      replicas: 3,
      output: 'ignore',
      order: 'semantic',
      linearizableReads: true,
      suspectAfterMs: 500,
      writeTimeoutMs: 2_000,
    })
    const run = await runChaos(cluster, {
      durationMs: DURATION,
      clientsPerReplica: 2,
      seed: 3,
      faultEveryMs: 3_000,
      downMs: [200, 1_500],
    })
    expect(run.kills).toBeGreaterThan(0)
    expect(run.counts.ok).toBeGreaterThan(100)
    let digests = new Set<string | undefined>()
    for (let i = 0; i < 100; i++) {
      const reports = await cluster.reports()
      digests = new Set(Object.values(reports).map((r) => r.dump?.digest))
      if (Object.keys(reports).length === cluster.replicas.length && digests.size === 1) break
      await new Promise((r) => setTimeout(r, 100))
    }
    expect(digests.size).toBe(1)
    const verdict = check(kvModel(), run.history, { timeoutMs: 60_000 })
    if (verdict.result !== 'ok') console.log(verdict.counterexample?.text)
    expect(verdict.result).toBe('ok')
    console.log(`semantic order: ${run.history.length} operations, ${run.kills} kills`, run.counts)
  }, 180_000)
})
