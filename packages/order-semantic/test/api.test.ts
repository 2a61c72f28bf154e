/** Bad arguments, bad input from the network, checkpoints and closing. */
import { divider } from '@consul/divider'
import { psync } from '@consul/psync'
import { dist, Simulation } from '@consul/sim'
import { ORDER, ORDER_CHANNEL, type OrderedCommand, PSYNC, stack } from '@consul/xkernel'
import { encodeCommandBatch, OrderError as SharedOrderError } from '@consul/xkernel/order'
import { describe, expect, it } from 'vitest'
import { OrderError, type SemanticOrderOptions, semanticOrder } from '../src/index.js'

const text = new TextEncoder()
const command = (rank: number, name: string) => Uint8Array.of(rank, ...text.encode(name))

/** Byte 0 is the rank; 0xfe and 0xff stand for a bad class (not an integer, a throw). */
const classOf = (c: Uint8Array) => {
  if (c[0] === 0xff) throw new Error('no class for 0xff')
  if (c[0] === 0xfe) return 1.5
  return c[0]!
}

async function cluster(options: Partial<SemanticOrderOptions> = {}) {
  const sim = new Simulation({
    seed: 3,
    nodes: 3,
    stack: stack()
      .use(psync({ logEveryMs: 1 }))
      .use(divider())
      .use(semanticOrder({ classOf, ...options })),
    network: { delay: dist.constant(1) },
  })
  await sim.start()
  await sim.openAll({ port: 'g' })
  const delivered = new Map<string, string[]>()
  for (const node of sim.nodes) {
    const list: string[] = []
    delivered.set(node, list)
    sim
      .host(node)
      .group('g')!
      .get(ORDER)
      .onDeliver((c) => list.push(new TextDecoder().decode(c.command.subarray(1))))
  }
  const order = (node: string) => sim.host(node).group('g')!.get(ORDER)
  return { sim, order, delivered }
}

const code = async (p: Promise<unknown>) => {
  try {
    await p
  } catch (error) {
    return error instanceof OrderError ? `${error.code}: ${error.message}` : String(error)
  }
  return 'resolved'
}

describe('options', () => {
  it('rejects a missing or non-function classOf and bad numbers with OrderError', () => {
    const bad = [
      undefined,
      {},
      { classOf: 'rank' },
      { classOf, ackDelayMs: -1 },
      { classOf, maxBatch: 0 },
      { classOf, maxBatch: 2.5 },
      { classOf, maxBatchBytes: Number.NaN },
    ]
    for (const options of bad) {
      expect(() => semanticOrder(options as unknown as SemanticOrderOptions)).toThrow(OrderError)
    }
    expect(() => semanticOrder({} as SemanticOrderOptions)).toThrow(/classOf must be a function/)
    expect(() => semanticOrder({ classOf, ackDelayMs: 0, maxBatch: 1 })).not.toThrow()
  })

  it("throws the Orders' one OrderError (the class of @consul/xkernel/order)", () => {
    expect(OrderError).toBe(SharedOrderError)
    expect(() => semanticOrder({} as SemanticOrderOptions)).toThrow(
      expect.objectContaining({ name: 'OrderError', code: 'INVALID_ARGUMENT' }),
    )
  })
})

describe('submit', () => {
  it('is semantic order, specification v2 (through the Divider)', async () => {
    const { order } = await cluster()
    expect(order('n1').specificationVersion).toBe('v2')
    expect(order('n1').semantics).toBe('semantic')
  })

  it('refuses a command whose class is bad, with a clear error, and sends nothing', async () => {
    const { sim, order, delivered } = await cluster({
      classOf: (c) => [0, -1, 1.5, Number.NaN, '2', undefined][c[0]!] as number,
    })
    const errors = await Promise.all(
      [1, 2, 3, 4, 5].map((bad) => code(order('n1').submit(Uint8Array.of(bad)))),
    )
    for (const e of errors)
      expect(e).toMatch(/^BAD_CLASS: submit\(\): classOf returned .*non-negative integer/)
    expect(errors[0]).toContain('returned -1')
    expect(errors[3]).toContain('returned string')
    const thrown = await cluster({ classOf })
    expect(await code(thrown.order('n1').submit(Uint8Array.of(0xff)))).toMatch(
      /^BAD_CLASS: submit\(\): classOf threw: no class for 0xff/,
    )
    await sim.run({ until: 100 })
    expect(sim.host('n1').stats()['order-semantic']?.submitted).toBeUndefined()
    expect(delivered.get('n2')).toEqual([])
  })

  it('refuses what is not a Uint8Array and what exceeds maxBatchBytes', async () => {
    const { order } = await cluster({ maxBatchBytes: 8 })
    expect(await code(order('n1').submit('x' as unknown as Uint8Array))).toMatch(
      /^INVALID_ARGUMENT: submit\(\) takes the command as a Uint8Array/,
    )
    expect(await code(order('n1').submit(new Uint8Array(9)))).toMatch(
      /^INVALID_ARGUMENT: command of 9 bytes exceeds maxBatchBytes \(8\)/,
    )
  })

  it('resolves with the own command once delivered here; batches one turn into one message', async () => {
    const { sim, order } = await cluster()
    const results: OrderedCommand[] = []
    sim.at(5, () => {
      for (let i = 0; i < 5; i++)
        void order('n1')
          .submit(command(i % 2, `c${i}`))
          .then((c) => results.push(c))
    })
    await sim.run({ until: 200 })
    expect(results).toHaveLength(5)
    expect(new Set(results.map((c) => c.message)).size).toBe(1)
    expect(results.every((c) => c.sender === 'n1')).toBe(true)
    // Rank 0 first (early), then rank 1 at the wave's completion.
    expect(results.map((c) => c.id.slice(-1))).toEqual(['0', '2', '4', '1', '3'])
    expect(sim.host('n1').stats()['order-semantic']?.batches).toBe(1)
  })

  it('rejects pending and later submits with CLOSED when the group closes', async () => {
    const { sim, order } = await cluster()
    sim.network.isolate('n1')
    const pending = order('n1').submit(command(1, 'never'))
    await sim.run({ until: 50 })
    await sim.host('n1').group('g')!.close()
    expect(await code(pending)).toMatch(/^CLOSED: /)
  })

  it('takes only functions in onDeliver, and unsubscribes', async () => {
    const { sim, order } = await cluster()
    expect(() => order('n1').onDeliver('x' as unknown as () => void)).toThrow(OrderError)
    const seen: string[] = []
    const off = order('n2').onDeliver((c) => seen.push(c.id))
    off()
    sim.at(1, () => void order('n1').submit(command(0, 'x')))
    await sim.run({ until: 100 })
    expect(seen).toEqual([])
  })
})

describe('bad input from the network', () => {
  it('skips a received command with a bad class at every replica, counts it and warns', async () => {
    const { sim, delivered } = await cluster()
    // Sent below the Order (as a faulty or hostile member could): a good command between
    // two whose class is bad.
    sim.at(1, () => {
      sim
        .host('n1')
        .group('g')!
        .get(PSYNC)
        .send(encodeCommandBatch([Uint8Array.of(0xff), command(0, 'good'), Uint8Array.of(0xfe)]))
    })
    await sim.run({ until: 100 })
    for (const node of sim.nodes) {
      expect(delivered.get(node), node).toEqual(['good'])
      expect(sim.host(node).stats()['order-semantic']?.droppedBadClass, node).toBe(2)
    }
    const warnings = sim.logs.filter((l) => l.msg === 'command with a bad class skipped')
    expect(warnings.length).toBe(6)
    expect(JSON.stringify(warnings[0])).toMatch(/classOf threw: no class for 0xff/)
    expect(JSON.stringify(warnings)).toMatch(/classOf returned 1.5/)
  })

  it('skips malformed batches and other channels, and keeps ordering', async () => {
    const { sim, order, delivered } = await cluster()
    sim.at(1, () => {
      const conversation = sim.host('n2').group('g')!.get(PSYNC)
      conversation.send(Uint8Array.of(ORDER_CHANNEL, 3, 1)) // claims 3 commands, has half of one
      conversation.send(Uint8Array.of(0x4d, 1, 2, 3)) // another protocol's channel
    })
    sim.at(30, () => void order('n1').submit(command(1, 'after')))
    await sim.run({ until: 200 })
    for (const node of sim.nodes) {
      expect(delivered.get(node), node).toEqual(['after'])
      expect(sim.host(node).stats()['order-semantic']?.droppedMalformed, node).toBe(1)
    }
  })
})

describe('checkpoint and restore', () => {
  it('round-trips position; refuses foreign or corrupt checkpoints and a late restore', async () => {
    const { sim, order } = await cluster()
    sim.at(1, () => void order('n1').submit(command(1, 'one')))
    await sim.run({ until: 100 })
    const n2 = order('n2')
    expect(n2.atWaveBoundary()).toBe(true)
    const bytes = n2.checkpoint()
    const position = n2.position()
    expect(position.delivered).toBe(1)
    const fresh = new Simulation({
      seed: 4,
      nodes: 1,
      stack: stack().use(psync()).use(divider()).use(semanticOrder({ classOf })),
    })
    await fresh.start()
    await fresh.openAll({ port: 'g' })
    const other = fresh.host('n1').group('g')!.get(ORDER)
    const bad = [
      text.encode('not json'),
      text.encode('{"v":1,"wave":2,"delivered":3}'), // order-total's shape, no kind
      text.encode('{"kind":"order-semantic","v":2,"wave":2,"delivered":3}'),
      text.encode('{"kind":"order-semantic","v":1,"wave":-1,"delivered":3}'),
      text.encode('null'),
    ]
    for (const b of bad) expect(() => other.restore(b)).toThrow(/checkpoint/)
    expect(() => other.restore('x' as unknown as Uint8Array)).toThrow(OrderError)
    other.restore(bytes)
    expect(other.position()).toEqual(position)
    // After a delivery, restoring would skip or repeat commands: refused.
    expect(() => n2.restore(bytes)).toThrow(/before the first delivery/)
  })
})
