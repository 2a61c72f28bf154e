/**
 * The vitest side of the Order conformance suite: `orderSuite(setup)` declares one test per
 * aspect (each over many seeds, with Psync pruning its log), and `orderSuiteTeeth(setup)`
 * shows the suite rejecting each of the broken Orders in `broken.ts`.
 */
import { Simulation } from '@consul/sim'
import { ORDER, type OrderedCommand } from '@consul/xkernel'
import { describe, expect, it } from 'vitest'
import {
  BROKEN_ORDER_FAULTS,
  brokenOrder,
  conflictsOf,
  EXPECTED_CHECK,
  kindOf,
  referenceOrder,
} from './broken.js'
import {
  defaultCommand,
  type OrderSetup,
  orderStack,
  type Pruning,
  type ScenarioKind,
} from './harness.js'
import { runOrderScenario } from './run.js'

/** Seeds the membership test always runs: each once found an excluded member's own history. */
const MEMBERSHIP_REGRESSION_SEEDS = [13, 112]

/** Runs the campaign found failing, kept as regression tests (kind, pruning, seed, why). */
const CAMPAIGN_REGRESSIONS: readonly {
  kind: ScenarioKind
  pruning: Pruning
  seed: number
  found: string
}[] = [
  {
    kind: 'crash',
    pruning: 'retain',
    seed: 90,
    found:
      "order-total: after a restart a kept message depended on a member's earlier highest pruned message, no longer exact once a higher one was pruned: the waves disagreed",
  },
  {
    kind: 'membership',
    pruning: 'retain',
    seed: 526,
    found:
      'order-total: a kept message whose successor was pruned became a leaf again when rebuilt after a restart; the member sent messages with two deps on one member, dropped as malformed everywhere',
  },
]

/** Both pruning modes, alternating by seed. */
export const pruningFor = (seed: number): Pruning => (seed % 2 === 0 ? 'checkpoints' : 'retain')

const range = (from: number, count: number) => Array.from({ length: count }, (_, i) => from + i)

async function expectClean(setup: OrderSetup, kind: ScenarioKind, seeds: readonly number[]) {
  for (const seed of seeds) {
    const run = await runOrderScenario(setup, kind, pruningFor(seed), seed)
    expect(
      run.problems,
      `${kind} seed ${seed}, pruning ${run.pruning} (${run.environment})`,
    ).toEqual([])
  }
}

export function orderSuite(setup: OrderSetup): void {
  const seeds = setup.seeds ?? 10
  const share = (divisor: number, min = 3) => Math.max(min, Math.ceil(seeds / divisor))
  describe(`Order conformance: ${setup.name}`, () => {
    it('implements specification v1 or v2; submit resolves with the own command at both levels, and rejects a bad level', async () => {
      const sim = new Simulation({
        seed: 1,
        nodes: 3,
        stack: orderStack(setup, { logEveryMs: 1 }),
      })
      await sim.start()
      await sim.openAll({ port: 'api' })
      const order = sim.host('n1').group('api')!.get(ORDER)
      expect(['v1', 'v2']).toContain(order.specificationVersion)
      // A v2 Order takes its messages through the Divider: it must require it.
      const requiresDivider = setup.order().requires.some((c) => c.name === 'divider')
      expect(requiresDivider).toBe(order.specificationVersion === 'v2')
      expect(['total', 'semantic']).toContain(order.semantics)
      if (setup.conflicts === undefined) expect(order.semantics).toBe('total')
      const command = (setup.command ?? defaultCommand)(sim.random, 'n1', 1)
      const resolved: OrderedCommand[] = []
      void order.submit(command).then((c) => void resolved.push(c))
      void order.submit(command, { level: 'agreed' }).then((c) => void resolved.push(c))
      await expect(order.submit('nope' as unknown as Uint8Array)).rejects.toThrow()
      await expect(order.submit(command, { level: 'uniform' as 'safe' })).rejects.toMatchObject({
        code: 'INVALID_ARGUMENT',
      })
      await sim.run({ until: 500 })
      expect(resolved).toHaveLength(2)
      for (const c of resolved) {
        expect(c.sender).toBe('n1')
        expect(Buffer.from(c.command).equals(Buffer.from(command))).toBe(true)
      }
      expect(order.position().delivered).toBeGreaterThanOrEqual(2)
    })

    it(`agreement, no duplication, no creation, causal order, validity and liveness under loss, partitions, pauses, corruption and clock jumps, with pruning (${seeds} seeds, 3 and 5 replicas)`, async () => {
      await expectClean(setup, 'calm', range(1, seeds))
    })

    it(`the same with crashes, restarts and torn writes (${share(2)} seeds)`, async () => {
      await expectClean(setup, 'crash', range(100, share(2)))
    })

    it(`a crash right after a replica delivered its own command takes no acknowledged command away (${share(2)} seeds)`, async () => {
      await expectClean(setup, 'durability', range(200, share(2)))
    })

    it('an agreed exclusion takes effect at the same point everywhere, also in a replay after a crash; every safe acknowledgement survives it', async () => {
      const seedList = [...new Set([...range(1, share(4)), ...MEMBERSHIP_REGRESSION_SEEDS])]
      let nonUniform = 0
      for (const seed of seedList) {
        const run = await runOrderScenario(setup, 'membership', pruningFor(seed), seed)
        expect(run.problems, `membership seed ${seed}, pruning ${run.pruning}`).toEqual([])
        if (run.nonUniform) nonUniform++
      }
      // The case 'safe' exists for must really occur: the excluded member delivered (at
      // 'agreed') own commands that the cut discarded — and no 'safe' acknowledgement of them.
      expect(nonUniform, 'seeds in which n4 delivered own commands above its cut').toBeGreaterThan(
        0,
      )
    })

    it(`seeds the campaign found (${CAMPAIGN_REGRESSIONS.length})`, async () => {
      for (const { kind, pruning, seed, found } of CAMPAIGN_REGRESSIONS) {
        const run = await runOrderScenario(setup, kind, pruning, seed)
        expect(run.problems, `${kind} seed ${seed}, pruning ${pruning} (once: ${found})`).toEqual(
          [],
        )
      }
    })

    it('a replica restored from a checkpoint continues with exactly the commands after it, with the log pruned below the checkpoint everywhere', async () => {
      await expectClean(setup, 'checkpoint', range(1, share(4)))
    })

    it('a replica restarted after pruning without a checkpoint that covers it stops (WAVE_GAP) instead of delivering a different sequence', async () => {
      await expectClean(setup, 'gap', [1, 2])
    })
  })
}

/**
 * The suite has teeth: the reference Order passes, and every broken Order is rejected by the
 * check meant for its fault. `setup.psync` as for `orderSuite`.
 */
export function orderSuiteTeeth(setup: Pick<OrderSetup, 'psync'>): void {
  describe('Order conformance suite rejects broken Orders', () => {
    it('the reference Order passes', async () => {
      const reference: OrderSetup = { name: 'reference', psync: setup.psync, order: referenceOrder }
      for (const kind of ['calm', 'crash', 'membership', 'gap'] as const)
        expect((await runOrderScenario(reference, kind, pruningFor(3), 3)).problems, kind).toEqual(
          [],
        )
    })
    for (const fault of BROKEN_ORDER_FAULTS) {
      it(`rejects ${fault} (${EXPECTED_CHECK[fault]})`, async () => {
        const conflicts = conflictsOf(fault)
        const broken: OrderSetup = {
          name: fault,
          psync: setup.psync,
          order: () => brokenOrder(fault),
          ...(conflicts === undefined ? {} : { conflicts }),
        }
        const kind: ScenarioKind = kindOf(fault)
        const found = new Set<string>()
        for (const seed of [1, 2, 3, 4, 5, 6]) {
          const run = await runOrderScenario(broken, kind, pruningFor(seed), seed)
          for (const p of run.problems) found.add(p.slice(1, p.indexOf(']')))
          if (found.has(EXPECTED_CHECK[fault])) break
        }
        // Rejected for its fault, not because the run itself broke.
        expect([...found]).not.toContain('run')
        expect([...found]).toContain(EXPECTED_CHECK[fault])
      })
    }
  })
}
