/**
 * `pnpm soak` (with the failover soak): the kill-and-restart soak — three replica processes of
 * the strong configuration on loopback UDP and LMDB under continuous load, `SOAK_CYCLES`
 * (default 100) times a random one killed with `SIGKILL` and restarted on its storage; at the
 * end every acknowledged command must be applied exactly once at every replica and all states
 * equal (the process exits 1 otherwise). Every `SOAK_DAMAGE_EVERY`-th cycle (default 10) the
 * victim's checkpoint records are damaged on its disk before the restart, so it fetches one
 * from a live member (state transfer). After cycle `SOAK_JOIN_AFTER` (default 5; 0: never) a
 * fourth replica joins the running group (a new configuration and a state transfer) and is
 * among the victims from then on. The driver is `packages/recovery/test/fixtures/soak.ts`
 * (its 10-cycle slice runs in `pnpm test`).
 */
import { runKillRestartSoak } from '../../packages/recovery/test/fixtures/soak.js'

export async function benchRecoverySoak(): Promise<Record<string, number | string>> {
  const cycles = Number(process.env.SOAK_CYCLES ?? 100)
  const report = await runKillRestartSoak({
    cycles,
    seed: Number(process.env.SOAK_SEED ?? 1),
    // Every 10th cycle the victim's checkpoints are damaged first: a state transfer.
    damageCheckpointsEvery: Number(process.env.SOAK_DAMAGE_EVERY ?? 10),
    ...(Number(process.env.SOAK_JOIN_AFTER ?? 5) > 0
      ? { joinAfterCycle: Number(process.env.SOAK_JOIN_AFTER ?? 5) }
      : {}),
    log: (line) => process.stdout.write(`${line}\n`),
  })
  if (report.lost > 0 || report.duplicated > 0 || !report.statesEqual) process.exitCode = 1
  return { ...report, statesEqual: String(report.statesEqual), joined: String(report.joined) }
}
