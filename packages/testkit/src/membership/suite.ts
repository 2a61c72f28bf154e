/**
 * The vitest side of the Membership conformance suite: `membershipSuite(setup)` declares one
 * test per aspect (each over a few seeds; `pnpm campaign:membership` runs thousands), and
 * `membershipSuiteTeeth(setup)` shows the suite rejecting each broken Membership in
 * `broken.ts`.
 */
import { describe, expect, it } from 'vitest'
import { BROKEN_MEMBERSHIPS, type BrokenMembership, brokenMembership } from './broken.js'
import {
  MEMBERSHIP_ASPECTS,
  type MembershipAspect,
  type MembershipSetup,
  runMembershipScenario,
} from './harness.js'

const range = (from: number, count: number) => Array.from({ length: count }, (_, i) => from + i)

/** Seeds the campaign found failing once, kept (aspect, seed, what it found). */
export const MEMBERSHIP_REGRESSIONS: readonly {
  aspect: MembershipAspect
  seed: number
  found: string
}[] = [
  {
    aspect: 'leave',
    seed: 121,
    found:
      "membership: a leave left for the next decision was lost — a member that installed the view before the leaver's word arrived dropped it as stale (the leaver now says it again in each instance)",
  },
  {
    aspect: 'leave',
    seed: 355,
    found:
      "membership: releasing a held member while installing a view delivered its parked 'accepted' at once; the re-entrant install applied the same exclusion twice (Psync refused it) and the view never stood",
  },
  {
    aspect: 'swarm',
    seed: 6,
    found:
      "psync: hold left a held member's own waiting chain in place; an acceptor inserted the suspect's messages above its promise (CUT_CONFLICT)",
  },
  ...[63, 983].map((seed) => ({
    aspect: 'swarm' as const,
    seed,
    found:
      'a one-way partition: a member that spoke but no longer heard the others was never suspected (it was heard), so nothing was decided and the group stopped',
  })),
  {
    aspect: 'swarm',
    seed: 5583,
    found:
      'psync: a hold taken while delivering did not park what the same insertion had released; the coordinator delivered past the cut and left a 2-member view stuck',
  },
  ...[292, 607].map((seed) => ({
    aspect: 'asymmetric-partition' as const,
    seed,
    found:
      "a deaf member's deaf down(q) was acknowledged before q's own nack arrived; two ballots named each other's coordinators, each side ignored the other's ballots, and the set could only grow: stuck after the heal",
  })),
  {
    aspect: 'asymmetric-partition',
    seed: 508,
    found:
      'a deaf member that did not yet suspect a majority proposed excluding two healthy members; a majority member promised it after nacking them and adopted the set for good',
  },
  {
    aspect: 'swarm',
    seed: 188,
    found:
      "psync: a held member's message that a message of a member not on hold waited for (through its chain) did not count; its predecessor was parked, and the waiting member asked for it forever (an event storm)",
  },
  {
    aspect: 'swarm',
    seed: 611,
    found:
      'psync: a send from a delivery callback of the log replay at a restart depended on the replayed prefix only — an own message older than its predecessor, in a completed wave: total order diverged',
  },
  {
    aspect: 'asymmetric-partition',
    seed: 274,
    found:
      'a ballot of the deaf side named a majority member whose own nack had already refuted it; that member stopped coordinating for good',
  },
  ...[836, 5138, 5607].map((seed) => ({
    aspect: 'swarm' as const,
    seed,
    found:
      'a ballot whose members were nacked could never be abandoned (the set only grew, holds stayed until the instance ended): stuck under loss and restarts',
  })),
  ...[4751, 6560].map((seed) => ({
    aspect: 'swarm' as const,
    seed,
    found:
      'a down(q) from a reporter q suspected at the time was ignored and never answered, even by q itself once it heard the reporter again: the reporter waited for that answer for ever and the group stopped',
  })),
  {
    aspect: 'partition',
    seed: 3531,
    found:
      "a minority member counted the members its own promised ballot was excluding (held, their messages parked) as reachable while Failure Detection's lengthened timeout for one of them ran: it called itself primary to the end of a 601 ms partition",
  },
  {
    aspect: 'swarm',
    seed: 1988,
    found:
      'psync: two leaving members that disagreed on which messages were void re-requested and re-sent what builds on a void message to each other without end (an event storm)',
  },
  {
    aspect: 'swarm',
    seed: 2096,
    found:
      "psync: a held member's message stayed 'needed' after the member that needed it was put on hold too; it was inserted above the decided cut at three acceptors — a 'safe' command lost, total order diverged",
  },
]

export function membershipSuite(setup: MembershipSetup, options: { seeds?: number } = {}): void {
  const seeds = options.seeds ?? 4
  describe(`membership conformance: ${setup.name}`, () => {
    for (const aspect of MEMBERSHIP_ASPECTS)
      it(`${aspect}: views agree, a majority decides, the order holds across views`, async () => {
        for (const seed of range(1, seeds)) {
          const run = await runMembershipScenario(setup, aspect, seed)
          expect(run.problems, `${aspect} seed ${seed} (${run.environment})`).toEqual([])
        }
      }, 240_000)
    it('campaign regressions', async () => {
      for (const { aspect, seed, found } of MEMBERSHIP_REGRESSIONS) {
        const run = await runMembershipScenario(setup, aspect, seed)
        expect(run.problems, `${aspect} seed ${seed} (once: ${found})`).toEqual([])
      }
    }, 240_000)
  })
}

/** Where each broken Membership must be caught, and by which check. */
export const BROKEN_MEMBERSHIP_CAUGHT: Record<
  BrokenMembership,
  { aspect: MembershipAspect; checks: readonly string[] }
> = {
  // Only one member suspects: it goes on without the other, the rest wait for it.
  local: { aspect: 'one-way', checks: ['view-agreement', 'total-order agreement'] },
  'no-majority': { aspect: 'partition', checks: ['primary-partition', 'view-agreement'] },
}

export function membershipSuiteTeeth(setup: Omit<MembershipSetup, 'membership' | 'name'>): void {
  describe('the membership suite has teeth', () => {
    for (const fault of BROKEN_MEMBERSHIPS)
      it(`rejects a Membership that is ${fault}`, async () => {
        const { aspect, checks } = BROKEN_MEMBERSHIP_CAUGHT[fault]
        let caught = 0
        for (const seed of range(1, 4)) {
          const run = await runMembershipScenario(
            {
              ...setup,
              name: `broken-${fault}`,
              membership: () => brokenMembership(fault) as never,
            },
            aspect,
            seed,
          )
          if (run.problems.some((p) => checks.some((check) => p.startsWith(`[${check}]`)))) caught++
        }
        expect(
          caught,
          `${fault} caught by [${checks.join('] or [')}] in ${aspect}`,
        ).toBeGreaterThan(0)
      }, 240_000)
  })
}
