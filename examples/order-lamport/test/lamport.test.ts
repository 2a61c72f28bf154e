import { divider } from '@consul/divider'
import { psync } from '@consul/psync'
import { dist, Simulation } from '@consul/sim'
import { DecodeError, ORDER, type OrderedCommand, PSYNC, stack } from '@consul/xkernel'
import { encodeCommandBatch, OrderError as SharedOrderError } from '@consul/xkernel/order'
import { describe, expect, it } from 'vitest'
import { decodeStampedBatch, encodeStampedBatch } from '../src/framing.js'
import { type LamportOrderOptions, lamportOrder, OrderError } from '../src/index.js'
import { LamportClock } from '../src/lamport-clock.js'
import { StabilityTracker } from '../src/stability.js'
import { compareCommandKeys, compareStamps } from '../src/stamp.js'

const text = (s: string) => new TextEncoder().encode(s)
const str = (c: OrderedCommand) => new TextDecoder().decode(c.command)

describe('Lamport clock', () => {
  it('stamps above everything sent or delivered, and moves past what it delivers', () => {
    const clock = new LamportClock()
    expect(clock.next()).toBe(1)
    clock.witness(1) // our own message comes back through Psync
    clock.witness(7) // someone else's
    expect(clock.now).toBe(8)
    expect(clock.next()).toBe(9)
    clock.witness(3) // an old stamp never moves it back
    expect(clock.now).toBe(10)
    clock.advanceTo(5)
    expect(clock.now).toBe(10)
    clock.advanceTo(20)
    expect(clock.next()).toBe(21)
  })

  it('orders by timestamp, then sender id, then index', () => {
    expect(
      compareStamps({ timestamp: 2, sender: 'z' }, { timestamp: 3, sender: 'a' }),
    ).toBeLessThan(0)
    expect(
      compareStamps({ timestamp: 3, sender: 'a' }, { timestamp: 3, sender: 'b' }),
    ).toBeLessThan(0)
    expect(compareStamps({ timestamp: 3, sender: 'b' }, { timestamp: 3, sender: 'b' })).toBe(0)
    expect(
      compareCommandKeys(
        { timestamp: 3, sender: 'b', index: 1 },
        { timestamp: 3, sender: 'b', index: 0 },
      ),
    ).toBeGreaterThan(0)
  })
})

describe('stability', () => {
  const members = ['n1', 'n2', 'n3']

  it('waits until every member can only send later keys', () => {
    const s = new StabilityTracker()
    const m = { timestamp: 5, sender: 'n2' }
    s.observe('n2', 5) // the message itself: its sender's next stamp is at least 6
    expect(s.blocking(m, members)).toBe('n1')
    s.observe('n1', 6)
    expect(s.blocking(m, members)).toBe('n3')
    s.observe('n3', 3) // n3 could still send (4, n3), which orders before (5, n2)
    expect(s.isStable(m, members)).toBe(false)
    s.observe('n3', 5)
    expect(s.isStable(m, members)).toBe(true)
  })

  it('breaks timestamp ties by member id', () => {
    const s = new StabilityTracker()
    s.observe('n2', 5)
    s.observe('n1', 4) // n1 can still send (5, n1) < (5, n2)
    s.observe('n3', 4) // n3's next is at least (5, n3) > (5, n2)
    expect(s.blocking({ timestamp: 5, sender: 'n2' }, members)).toBe('n1')
    s.observe('n1', 5)
    expect(s.isStable({ timestamp: 5, sender: 'n2' }, members)).toBe(true)
  })

  it('counts only the agreed list: an excluded member no longer blocks', () => {
    const s = new StabilityTracker()
    s.observe('n1', 9)
    s.observe('n2', 9)
    expect(s.isStable({ timestamp: 8, sender: 'n1' }, members)).toBe(false) // n3 silent
    expect(s.isStable({ timestamp: 8, sender: 'n1' }, ['n1', 'n2'])).toBe(true)
  })

  it('refuses a stamp that does not exceed its sender’s previous one', () => {
    const s = new StabilityTracker()
    expect(s.observe('n1', 4)).toBe(true)
    expect(s.observe('n1', 4)).toBe(false)
    expect(s.observe('n1', 2)).toBe(false)
    expect(s.lastFrom('n1')).toBe(4)
  })
})

describe('framing', () => {
  it('is the common command batch with a timestamp after the channel byte', () => {
    const commands = [text('a'), text('bc')]
    const frame = encodeStampedBatch(300, commands)
    const batch = encodeCommandBatch(commands)
    expect([...frame.subarray(3)]).toEqual([...batch.subarray(1)]) // 300 takes two varint bytes
    expect(decodeStampedBatch(frame)).toEqual({ timestamp: 300, commands })
    expect(decodeStampedBatch(encodeStampedBatch(7, []))).toEqual({ timestamp: 7, commands: [] })
  })

  it('ignores other channels and empty payloads, and rejects malformed frames', () => {
    expect(decodeStampedBatch(new Uint8Array(0))).toBeUndefined()
    expect(decodeStampedBatch(new Uint8Array([0x4d, 1]))).toBeUndefined()
    expect(() => decodeStampedBatch(new Uint8Array([0x4f]))).toThrow(DecodeError)
    expect(() => decodeStampedBatch(new Uint8Array([0x4f, 0, 0]))).toThrow(DecodeError) // timestamp 0
    expect(() => decodeStampedBatch(new Uint8Array([0x4f, 1, 1, 5, 1]))).toThrow(DecodeError)
    const trailing = new Uint8Array([...encodeStampedBatch(1, [text('x')]), 0])
    expect(() => decodeStampedBatch(trailing)).toThrow(DecodeError)
  })
})

async function cluster(options: LamportOrderOptions = {}, delay = 1) {
  const sim = new Simulation({
    seed: 7,
    nodes: 3,
    stack: stack()
      .use(psync({ logEveryMs: 1 }))
      .use(divider())
      .use(lamportOrder(options)),
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

describe('lamportOrder in a group', () => {
  it('delivers concurrent commands by (timestamp, sender) everywhere, then falls silent', async () => {
    const { sim, order, seen } = await cluster({}, 3)
    sim.at(1, () => {
      void order('n3').submit(text('c'))
      void order('n1').submit(text('a'))
      void order('n2').submit(text('b'))
    })
    await sim.run({ until: 100 })
    // All three stamped 1 (concurrent): the sender id decides.
    for (const n of sim.nodes) expect(seen.get(n)).toEqual(['a', 'b', 'c'])
    const sent = () => sim.nodes.map((n) => sim.host(n).stats().psync?.sent ?? 0)
    const before = sent()
    await sim.run({ until: 1_000 })
    expect(sent(), 'acknowledgements never answer acknowledgements').toEqual(before)
  })

  it('delivers every submitted command everywhere and resolves each submit', async () => {
    const { sim, order, seen } = await cluster({ ackDelayMs: 2 }, 2)
    const resolved: OrderedCommand[] = []
    let n = 0
    sim.every(3, 300, () => {
      for (const node of sim.nodes)
        if (sim.random.next() < 0.5)
          void order(node)
            .submit(text(`${node}#${++n}`))
            .then((c) => resolved.push(c))
    })
    await sim.run({ until: 1_000 })
    expect(resolved).toHaveLength(n)
    for (const node of sim.nodes) expect(seen.get(node)).toEqual(seen.get('n1'))
    expect(seen.get('n1')).toHaveLength(n)
    // Quiet at the end: the wave bound has passed every message.
    const last = resolved.at(-1)!
    expect(order('n1').position()).toEqual({ wave: expect.any(Number), delivered: n })
    expect(order('n1').position().wave).toBeGreaterThan(
      sim.host('n1').group('o')!.get(PSYNC).depth(last.message)!,
    )
  })

  it('waits for a silent member until it is excluded from the agreed list', async () => {
    const { sim, order, conversation, seen } = await cluster()
    sim.at(10, () => sim.network.isolate('n1'))
    sim.at(20, () => void order('n2').submit(text('x')))
    await sim.run({ until: 200 })
    // n1 has sent nothing, so it could still send (1, n1), which orders before (1, n2).
    expect(seen.get('n2')).toEqual([])
    expect(seen.get('n3')).toEqual([])
    sim.at(210, () => {
      for (const n of ['n2', 'n3']) conversation(n).exclude('n1', 0)
    })
    await sim.run({ until: 300 })
    expect(seen.get('n2')).toEqual(['x'])
    expect(seen.get('n3')).toEqual(['x'])
  })

  it('checkpoints anywhere, and refuses a foreign checkpoint or a late restore', async () => {
    const { sim, order } = await cluster()
    sim.at(1, () => void order('n1').submit(text('a')))
    await sim.run({ until: 100 })
    expect(order('n2').atWaveBoundary()).toBe(true)
    const checkpoint = order('n2').checkpoint()
    expect(JSON.parse(new TextDecoder().decode(checkpoint))).toMatchObject({
      format: 'order-lamport',
      last: { sender: 'n1', index: 0 },
      delivered: 1,
    })
    expect(() => order('n2').restore(checkpoint)).toThrow(OrderError)
    expect(() => order('n2').restore(text('{}'))).toThrow(/not an order-lamport checkpoint/)
  })

  it("throws the Orders' one OrderError, the class @consul/xkernel/order exports", () => {
    expect(OrderError).toBe(SharedOrderError)
    try {
      lamportOrder({ ackDelayMs: -1 })
      expect.unreachable()
    } catch (error) {
      expect(OrderError.isInstance(error)).toBe(true)
      expect(error).toMatchObject({ name: 'OrderError', code: 'INVALID_ARGUMENT' })
    }
  })

  it('validates its options and its input at the API edge', async () => {
    expect(() => lamportOrder({ maxBatch: 0 })).toThrow(OrderError)
    const { order } = await cluster({ maxBatchBytes: 4 })
    await expect(order('n1').submit(text('too long'))).rejects.toThrow(/maxBatchBytes/)
    await expect(order('n1').submit('x' as unknown as Uint8Array)).rejects.toThrow(/Uint8Array/)
  })
})
