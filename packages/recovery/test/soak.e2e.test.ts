/**
 * The kill-and-restart soak, a 10-cycle slice (`pnpm soak` runs ≥ 100): real replica processes
 * of the strong configuration over loopback UDP with LMDB, `SIGKILL` and restart of random
 * replicas under continuous load, and a fourth replica joining the running group midway; at the
 * end every acknowledged command is applied exactly once at every replica and all states are
 * equal.
 */
import { describe, expect, it } from 'vitest'
import { runKillRestartSoak } from './fixtures/soak.js'

describe('kill -9 and restart under load, real processes', () => {
  it('10 cycles, a fourth replica joining after the third: nothing acknowledged lost, nothing applied twice, equal states', async () => {
    const report = await runKillRestartSoak({
      cycles: 10,
      seed: 7,
      // Cycles 4 and 8 damage the victim's checkpoints: it fetches one from a live member.
      damageCheckpointsEvery: 4,
      // After cycle 3 a fourth replica joins (a new configuration, a state transfer); the
      // later cycles may kill it too.
      joinAfterCycle: 3,
      log: (line) => console.log(line),
    })
    console.log('soak report', JSON.stringify(report))
    expect(report.acknowledged).toBeGreaterThan(100)
    expect(report.lost).toBe(0)
    expect(report.duplicated).toBe(0)
    expect(report.statesEqual).toBe(true)
    // Most restarts start from a checkpoint (the first ones may come before any).
    expect(report.restoredFromCheckpoint).toBeGreaterThanOrEqual(5)
    expect(report.damaged).toBe(2)
    expect(report.transfers).toBeGreaterThanOrEqual(1)
    expect(report.joined).toBe(true)
  }, 600_000)
})
