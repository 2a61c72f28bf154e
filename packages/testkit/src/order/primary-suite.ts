/**
 * The Order conformance suite's primary-partition part: an Order stops ordering outside the
 * primary partition, as `membership.primary` tells it (`orderPrimarySuite`).
 */
import { dist, Simulation } from '@consul/sim'
import {
  type ConsulEvents,
  capability,
  defineProtocol,
  ORDER,
  type OrderControl,
  type OrderedCommand,
  type PsyncControl,
  type Stack,
  stack,
} from '@consul/xkernel'
import { OrderError } from '@consul/xkernel/order'
import { describe, expect, it } from 'vitest'
import type { OrderSetup } from './harness.js'

type PrimaryState = ConsulEvents['membership.primary']['state']
type Announce = (state: PrimaryState, view: number) => void
const ANNOUNCER = capability<'announcer', Announce>('announcer')

/** Stands in for Membership: raises `membership.primary` on its group when told to. */
const announcer = defineProtocol({
  name: 'announcer',
  provides: [ANNOUNCER],
  raises: ['membership.primary'],
  create: () => ({
    open: (ctx) => ({
      controls: {
        announcer: (state, view) =>
          ctx.events.emit('membership.primary', { group: ctx.group.port, state, view }),
      },
    }),
  }),
})

/** Records how a submit settles (its rejection handled at once). */
function settle(
  promise: Promise<OrderedCommand>,
  str: (c: OrderedCommand) => string,
): { value?: string; error?: unknown } {
  const out: { value?: string; error?: unknown } = {}
  promise.then(
    (c) => {
      out.value = str(c)
    },
    (error: unknown) => {
      out.error = error
    },
  )
  return out
}

async function cluster(setup: OrderSetup, str: (c: OrderedCommand) => string) {
  const sim = new Simulation({
    seed: 7,
    nodes: 3,
    stack: withAnnouncer(setup),
    network: { delay: dist.constant(1) },
  })
  await sim.start()
  await sim.openAll({ port: 'o' })
  const order = (n: string) => sim.host(n).group('o')!.get(ORDER)
  const announce = (n: string, state: PrimaryState, view: number) =>
    sim.host(n).group('o')!.get(ANNOUNCER)(state, view)
  const seen = new Map<string, string[]>(sim.nodes.map((n) => [n, []]))
  for (const n of sim.nodes) order(n).onDeliver((c) => seen.get(n)!.push(str(c)))
  return { sim, order, announce, seen }
}

/**
 * Declares the tests of an Order outside the primary partition: it follows
 * `membership.primary` (raised by Membership) for its own group only — `minority` refuses new
 * submits with `OrderError('NO_PRIMARY')` and keeps the pending ones, `primary` orders again,
 * `excluded` rejects the pending ones too and is final. A stand-in protocol raises the event.
 * Every Order built on `CommandBatcher` gets this from `followPrimary`; a v1 Order that does
 * not observe the event fails here.
 */
export function orderPrimarySuite(setup: OrderSetup): void {
  // Commands of class rank 1 (byte 0) for a semantic Order, plain text for a total one.
  const semantic = setup.conflicts !== undefined
  const text = (s: string) =>
    semantic ? Uint8Array.of(1, ...new TextEncoder().encode(s)) : new TextEncoder().encode(s)
  const str = (c: OrderedCommand) =>
    new TextDecoder().decode(semantic ? c.command.subarray(1) : c.command)
  const cluster_ = () => cluster(setup, str)
  describe(`${setup.name} outside the primary partition`, () => {
    it('minority: refuses new submits, keeps the pending ones; primary again: orders', async () => {
      const { sim, order, announce, seen } = await cluster_()
      sim.network.isolate('n1')
      const pending = settle(order('n1').submit(text('before')), str)
      await sim.run({ until: 20 })
      announce('n1', 'minority', 3)
      const refused = settle(order('n1').submit(text('refused')), str)
      await sim.run({ until: 40 })
      expect(OrderError.isInstance(refused.error)).toBe(true)
      expect(refused.error).toMatchObject({
        code: 'NO_PRIMARY',
        message: expect.stringMatching(
          /^group o is in a minority partition \(view 3\): it cannot order until it reaches a majority again; the command was not sent$/,
        ),
      })
      expect(pending).toEqual({})
      sim.network.heal()
      announce('n1', 'primary', 4)
      const after = settle(order('n1').submit(text('after')), str)
      await sim.run({ until: 200 })
      expect(pending.value).toBe('before')
      expect(after.value).toBe('after')
      for (const n of sim.nodes) expect(seen.get(n)).toEqual(['before', 'after'])
    })

    it('excluded: rejects the pending submits (outcome unknown here) and every later one', async () => {
      const { sim, order, announce } = await cluster_()
      sim.network.isolate('n1')
      const pending = settle(order('n1').submit(text('stuck')), str)
      await sim.run({ until: 20 })
      announce('n1', 'excluded', 5)
      await sim.run({ until: 21 })
      expect(OrderError.isInstance(pending.error)).toBe(true)
      expect(pending.error).toMatchObject({
        code: 'NO_PRIMARY',
        message: expect.stringMatching(/view 5.*its outcome is unknown here/),
      })
      announce('n1', 'primary', 6) // excluded is final for this session
      await expect(order('n1').submit(text('later'))).rejects.toMatchObject({ code: 'NO_PRIMARY' })
    })

    it("follows its own group's membership.primary only", async () => {
      const { sim, order } = await cluster_()
      await sim.openAll({ port: 'other' })
      const other = sim.host('n1').group('other')!
      other.get(ANNOUNCER)('minority', 1)
      const result = settle(order('n1').submit(text('x')), str)
      await expect(other.get(ORDER).submit(text('y'))).rejects.toMatchObject({ code: 'NO_PRIMARY' })
      await sim.run({ until: 100 })
      expect(result.value).toBe('x')
    })
  })
}

/** Psync, the Divider (v2), the stand-in announcer and the Order under test. */
function withAnnouncer(
  setup: OrderSetup,
): Stack<{ psync: PsyncControl; order: OrderControl; announcer: Announce }> {
  const base = stack().use(setup.psync({ logEveryMs: 1 }))
  const below = setup.divider === undefined ? base : base.use(setup.divider())
  return (below as unknown as Stack<{ psync: PsyncControl }>)
    .use(announcer)
    .use(setup.order() as never) as never
}
