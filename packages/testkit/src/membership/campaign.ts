/**
 * The Membership campaign: every aspect of the suite over a long range of seeds — what
 * `pnpm campaign:membership` runs (≥ 10,000 seeds), where the suite's own tests run a bounded
 * slice. Seed `s` runs aspect `s mod 8`, so any range covers them all, and a failing seed is
 * replayed by running that one seed again.
 */
import {
  MEMBERSHIP_ASPECTS,
  type MembershipAspect,
  type MembershipRun,
  type MembershipSetup,
  runMembershipScenario,
} from './harness.js'

/** The aspect seed `seed` runs in the campaign. */
export function membershipCampaignAspect(seed: number): MembershipAspect {
  return MEMBERSHIP_ASPECTS[seed % MEMBERSHIP_ASPECTS.length]!
}

/** Runs seeds `from..to` (inclusive); `onRun` sees each result as it comes; returns the failed ones. */
export async function runMembershipCampaign(
  setup: MembershipSetup,
  from: number,
  to: number,
  onRun: (run: MembershipRun) => void,
): Promise<MembershipRun[]> {
  const failed: MembershipRun[] = []
  for (let seed = from; seed <= to; seed++) {
    const run = await runMembershipScenario(setup, membershipCampaignAspect(seed), seed)
    onRun(run)
    if (run.problems.length > 0) failed.push(run)
  }
  return failed
}
