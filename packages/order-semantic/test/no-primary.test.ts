/** No ordering outside the primary partition: the Order follows `membership.primary`. */
import { divider } from '@consul/divider'
import { psync } from '@consul/psync'
import { dist, Simulation } from '@consul/sim'
import {
  type ConsulEvents,
  capability,
  defineProtocol,
  ORDER,
  type OrderedCommand,
  stack,
} from '@consul/xkernel'
import { describe, expect, it } from 'vitest'
import { OrderError, semanticOrder } from '../src/index.js'

type PrimaryState = ConsulEvents['membership.primary']['state']
const ANNOUNCER = capability<'announcer', (state: PrimaryState, view: number) => void>('announcer')

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

/** Class rank 1 (byte 0), then the name. */
const text = (s: string) => Uint8Array.of(1, ...new TextEncoder().encode(s))
const str = (c: OrderedCommand) => new TextDecoder().decode(c.command.subarray(1))

/** Records how a submit settles (its rejection handled at once). */
function settle(promise: Promise<OrderedCommand>): { value?: string; error?: unknown } {
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

async function cluster() {
  const sim = new Simulation({
    seed: 7,
    nodes: 3,
    stack: stack()
      .use(psync({ logEveryMs: 1 }))
      .use(divider())
      .use(announcer)
      .use(semanticOrder({ classOf: (c) => c[0] ?? 0 })),
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

describe('order-semantic outside the primary partition', () => {
  it('minority: refuses new submits, keeps the pending ones; primary again: orders', async () => {
    const { sim, order, announce, seen } = await cluster()
    sim.network.isolate('n1')
    const pending = settle(order('n1').submit(text('before')))
    await sim.run({ until: 20 })
    announce('n1', 'minority', 3)
    const refused = settle(order('n1').submit(text('refused')))
    await sim.run({ until: 40 })
    expect(refused.error).toBeInstanceOf(OrderError)
    expect(refused.error).toMatchObject({
      code: 'NO_PRIMARY',
      message: expect.stringMatching(
        /^group o is in a minority partition \(view 3\): it cannot order until it reaches a majority again; the command was not sent$/,
      ),
    })
    expect(pending).toEqual({})
    sim.network.heal()
    announce('n1', 'primary', 4)
    const after = settle(order('n1').submit(text('after')))
    await sim.run({ until: 200 })
    expect(pending.value).toBe('before')
    expect(after.value).toBe('after')
    for (const n of sim.nodes) expect(seen.get(n)).toEqual(['before', 'after'])
  })

  it('excluded: rejects the pending submits (outcome unknown here) and every later one', async () => {
    const { sim, order, announce } = await cluster()
    sim.network.isolate('n1')
    const pending = settle(order('n1').submit(text('stuck')))
    await sim.run({ until: 20 })
    announce('n1', 'excluded', 5)
    await sim.run({ until: 21 })
    expect(pending.error).toBeInstanceOf(OrderError)
    expect(pending.error).toMatchObject({
      code: 'NO_PRIMARY',
      message: expect.stringMatching(/view 5.*its outcome is unknown here/),
    })
    announce('n1', 'primary', 6) // excluded is final for this session
    await expect(order('n1').submit(text('later'))).rejects.toMatchObject({ code: 'NO_PRIMARY' })
  })

  it("follows its own group's membership.primary only", async () => {
    const { sim, order } = await cluster()
    await sim.openAll({ port: 'other' })
    const other = sim.host('n1').group('other')!
    other.get(ANNOUNCER)('minority', 1)
    const result = settle(order('n1').submit(text('x')))
    await expect(other.get(ORDER).submit(text('y'))).rejects.toMatchObject({ code: 'NO_PRIMARY' })
    await sim.run({ until: 100 })
    expect(result.value).toBe('x')
  })
})
