import { divider } from '@consul/divider'
import { dividerCheckers } from '@consul/divider/checkers'
import { psync } from '@consul/psync'
import { dist, Simulation } from '@consul/sim'
import {
  DIVIDER,
  MEMBERSHIP_CHANNEL,
  ORDER,
  type OrderedCommand,
  PSYNC,
  stack,
} from '@consul/xkernel'
import { OrderError as SharedOrderError } from '@consul/xkernel/order'
import { describe, expect, it } from 'vitest'
import { OrderError, type TotalOrderOptions, totalOrder } from '../src/index.js'

const text = (s: string) => new TextEncoder().encode(s)
const str = (c: OrderedCommand) => new TextDecoder().decode(c.command)

async function cluster(options: TotalOrderOptions = {}, delay = 1) {
  const sim = new Simulation({
    seed: 5,
    nodes: 3,
    stack: stack()
      .use(psync({ logEveryMs: 1 }))
      .use(divider())
      .use(totalOrder(options)),
    network: { delay: dist.constant(delay) },
  })
  await sim.start()
  await sim.openAll({ port: 'o' })
  const order = (n: string) => sim.host(n).group('o')!.get(ORDER)
  const conversation = (n: string) => sim.host(n).group('o')!.get(PSYNC)
  const seen = new Map<string, string[]>(sim.nodes.map((n) => [n, []]))
  for (const n of sim.nodes) order(n).onDeliver((c) => seen.get(n)!.push(str(c)))
  return { sim, order, conversation, seen }
}

describe('order-total', () => {
  it("takes its messages through the Divider: other protocols' messages share the waves but never reach it", async () => {
    const { sim, order, conversation, seen } = await cluster({}, 2)
    for (let i = 0; i < 9; i++) {
      const n = sim.nodes[i % 3]!
      sim.at(1 + i * 2, () => void order(n).submit(text(`c${i}`)))
      // Another protocol's traffic on its own channel (as Membership's will be).
      sim.at(2 + i * 2, () => void conversation(n).send(Uint8Array.of(MEMBERSHIP_CHANNEL.id, i)))
    }
    await sim.run({ until: 300 })
    expect(seen.get('n1')).toHaveLength(9)
    for (const n of sim.nodes) expect(seen.get(n)).toEqual(seen.get('n1'))
    expect(sim.host('n1').group('o')!.get(DIVIDER).subscriptions()).toEqual({
      operations: ['order-total'],
    })
    // Its 9 messages went nowhere (nobody here runs that protocol); bare acknowledgements
    // neither (order-total does not subscribe to them).
    const routed = sim.history.declared('divider.routed', 'n1')
    const membership = routed.filter((r) => r.data.channel === 'membership')
    expect(membership).toHaveLength(9)
    expect(membership.every((r) => r.data.to.length === 0)).toBe(true)
    expect(
      routed
        .filter((r) => r.data.channel === 'operations')
        .every((r) => r.data.to[0] === 'order-total'),
    ).toBe(true)
    expect(sim.host('n1').stats()['order-total']!.droppedMalformed ?? 0).toBe(0)
    expect(sim.check(dividerCheckers)).toEqual([])
  })

  it('delivers the same sequence everywhere, each wave by sender id', async () => {
    const { sim, order, seen } = await cluster({}, 3)
    sim.at(1, () => {
      void order('n3').submit(text('c'))
      void order('n1').submit(text('a'))
      void order('n2').submit(text('b'))
    })
    await sim.run({ until: 100 })
    for (const n of sim.nodes) expect(seen.get(n)).toEqual(['a', 'b', 'c'])
    expect(order('n1').position()).toEqual({ wave: expect.any(Number), delivered: 3 })
  })

  it('batches commands submitted in one turn into one Psync message', async () => {
    const { sim, order, conversation } = await cluster({ maxBatch: 4 })
    const sent: number[] = []
    conversation('n2').onDeliver((m) => {
      if (m.sender === 'n1' && m.payload.length > 0) sent.push(m.seq)
    })
    sim.at(1, () => {
      for (let i = 0; i < 10; i++) void order('n1').submit(text(`x${i}`))
    })
    await sim.run({ until: 100 })
    expect(sent).toHaveLength(3) // 4 + 4 + 2
    expect(sim.host('n1').stats()['order-total']).toMatchObject({ submitted: 10, batches: 3 })
  })

  it('acknowledges commands, but never acknowledgements: an idle group falls silent', async () => {
    const { sim, order } = await cluster({ ackDelayMs: 2 })
    sim.at(1, () => void order('n1').submit(text('one')))
    await sim.run({ until: 200 })
    const acks = sim.nodes.map((n) => sim.host(n).stats()['order-total']!.acks ?? 0)
    expect(acks).toEqual([0, 1, 1])
    const before = sim.stats().network.sent
    await sim.run({ until: 2_000 })
    expect(sim.stats().network.sent - before).toBe(0)
  })

  it('submit resolves with the own command once it is delivered here; bad input is refused', async () => {
    const { sim, order } = await cluster()
    let resolved: OrderedCommand | undefined
    sim.at(1, () => {
      void order('n2')
        .submit(text('mine'))
        .then((c) => {
          resolved = c
        })
    })
    await sim.run({ until: 50 })
    expect(resolved).toMatchObject({ sender: 'n2', id: 'n2:1/0' })
    await expect(order('n1').submit('x' as unknown as Uint8Array)).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    })
    await expect(order('n1').submit(new Uint8Array(70_000))).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    })
    expect(() => order('n1').restore(text('{"v":9}'))).toThrow(
      expect.objectContaining({ code: 'BAD_CHECKPOINT' }),
    )
    expect(() => order('n1').restore(text('not json'))).toThrow(
      expect.objectContaining({ code: 'BAD_CHECKPOINT' }),
    )
    expect(() => totalOrder({ maxBatch: 0 })).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
    )
  })

  it("throws the Orders' one OrderError (the class of @consul/xkernel/order)", async () => {
    expect(OrderError).toBe(SharedOrderError)
    const { order } = await cluster()
    const refused = await order('n1')
      .submit('x' as unknown as Uint8Array)
      .catch((error: unknown) => error)
    expect(OrderError.isInstance(refused)).toBe(true)
    expect(refused).toBeInstanceOf(OrderError)
    expect(refused).toMatchObject({ name: 'OrderError' })
  })

  it('a checkpoint cannot be taken from inside a delivery', async () => {
    const { sim, order } = await cluster()
    let error: unknown
    order('n1').onDeliver(() => {
      try {
        order('n1').checkpoint()
      } catch (e) {
        error = e
      }
    })
    sim.at(1, () => void order('n1').submit(text('x')))
    await sim.run({ until: 50 })
    expect(error).toMatchObject({ code: 'NOT_AT_WAVE_BOUNDARY' })
    expect(order('n1').atWaveBoundary()).toBe(true)
    expect(() => order('n1').checkpoint()).not.toThrow()
  })

  it('closing the group rejects commands not yet delivered', async () => {
    const { sim, order } = await cluster()
    sim.network.isolate('n1')
    const pending = order('n1').submit(text('stuck'))
    await sim.run({ until: 20 })
    await sim.host('n1').group('o')!.close()
    await expect(pending).rejects.toMatchObject({ code: 'CLOSED' })
  })

  it('skips malformed command batches from a hostile member, counting them', async () => {
    const { sim, conversation, seen } = await cluster()
    sim.at(1, () => void conversation('n3').send(new Uint8Array([0x4f, 5, 1])))
    sim.at(2, () => {
      for (const n of sim.nodes) conversation(n).send(new Uint8Array())
    })
    await sim.run({ until: 100 })
    expect(sim.host('n1').stats()['order-total']!.droppedMalformed).toBe(1)
    expect(seen.get('n1')).toEqual([])
  })
})
