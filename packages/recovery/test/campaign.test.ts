/**
 * A slice of the Recovery campaign (`pnpm campaign:recovery --seeds 1..10000` runs the whole):
 * crash-and-restart schedules under load over lossy networks, checked for durability, exactly
 * once, agreement and liveness (`fixtures/scenario.ts`).
 */
import { describe, expect, it } from 'vitest'
import { runRecoveryScenario } from './fixtures/scenario.js'

describe('the Recovery campaign, a slice', () => {
  it('seeds 1..8: durable, exactly once, equal states, every replica active again — state transfers among them', async () => {
    let transfers = 0
    for (let seed = 1; seed <= 8; seed++) {
      const run = await runRecoveryScenario(seed)
      expect(run.problems, `seed ${seed} (${run.environment})`).toEqual([])
      expect(run.restarts).toBeGreaterThan(0)
      transfers += run.transfers
    }
    // Some restarts found every checkpoint damaged and fetched one from a peer.
    expect(transfers).toBeGreaterThan(0)
  }, 600_000)

  // Seeds a campaign failed on, kept once fixed. 54: a member excluded while down restarted far
  // behind (its checkpoints damaged) and its requests made the others re-send without end (an
  // event storm); fixed in Psync (an excluded member is answered once per restartRetryMs) and
  // Recovery (excluded while down: it asks to rejoin instead of failing). 734: a member waiting
  // for a join's wave to be stable after the others had moved (their last word lost, nobody
  // left to repair it) stayed behind until its timeout, and the rejoining member's late submit
  // failed; now a member that waits asks, and is welcomed with the state it holds. 1726: a
  // member that never completed the join's wave (what it lacked was lost, its senders gone
  // into the next configuration) stayed primary in the old one — a restarting peer's
  // lengthened timeout kept it from the minority — with its state frozen; now a member held
  // for a join request asks after joinRetryMs, and moves (without the state, fetched there).
  it('regression seeds: 54, 734, 1726', async () => {
    for (const seed of [54, 734, 1726]) {
      const run = await runRecoveryScenario(seed)
      expect(run.problems, `seed ${seed} (${run.environment})`).toEqual([])
      expect(run.configurations).toBeGreaterThanOrEqual(1)
    }
  }, 300_000)

  // Open (#12): found by the campaign, NOT fixed. Members that crash with every checkpoint
  // damaged, close together, after an exclusion whose deciding messages their logs have pruned
  // forget the cut (only Membership's checkpoint held it), take the excluded member's void
  // messages in while they fetch a state, get buried by the others and end stuck recovering or
  // transferring (their missing commands and short states follow from that). A fix that
  // recorded the cut in Psync's log and re-applied it before the replay passed these seeds but
  // broke total-order agreement in the membership conformance of order-lamport (swarm seeds 6
  // and 1988: the replayed waves changed), so it was reverted. This test keeps the seeds in
  // view: it fails — and must be moved to the regressions above — once they pass.
  it('open: seeds 3289, 3486, 3521 still end with members stuck recovering or transferring', async () => {
    for (const seed of [3289, 3486, 3521]) {
      const run = await runRecoveryScenario(seed)
      expect(
        run.problems.some((p) => /^\[liveness\] n\d ends (recovering|transferring)/.test(p)),
        `seed ${seed} (${run.environment}): ${run.problems.join('; ')}`,
      ).toBe(true)
    }
  }, 300_000)

  it('the checks have teeth: a machine whose snapshot forgets half its state is caught', async () => {
    const run = await runRecoveryScenario(1, { brokenSnapshot: true })
    expect(run.problems.some((p) => p.startsWith('[durability]'))).toBe(true)
    expect(run.problems.some((p) => p.startsWith('[agreement]'))).toBe(true)
  }, 120_000)
})
