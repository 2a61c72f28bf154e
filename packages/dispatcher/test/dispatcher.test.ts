import { divider } from '@consul/divider'
import { semanticOrder } from '@consul/order-semantic'
import { totalOrder } from '@consul/order-total'
import { psync } from '@consul/psync'
import { dist, Simulation } from '@consul/sim'
import { type AppliedCommand, DISPATCHER, notApplied, ORDER, stack } from '@consul/xkernel'
import { describe, expect, it } from 'vitest'
import { encodeCommand } from '../src/codec.js'
import {
  classOfCommands,
  DispatchError,
  defineCommands,
  dispatcher,
  stateMachine,
} from '../src/index.js'

type Kv = Map<string, number>

const kv = stateMachine({
  initial: (): Kv => new Map(),
  commands: defineCommands({
    set: (s: Kv, a: { key: string; value: number }) => {
      const old = s.get(a.key)
      s.set(a.key, a.value)
      return old
    },
    incr: (s: Kv, a: { key: string }) => {
      const v = s.get(a.key)
      if (v === undefined)
        throw Object.assign(new RangeError(`no key ${a.key}`), { code: 'NO_KEY' })
      s.set(a.key, v + 1)
      return v + 1
    },
    later: async (s: Kv, a: { key: string }) => {
      s.set(a.key, -1)
    },
  }),
  snapshot: (s) => [...s],
  restore: (x) => new Map(x as [string, number][]),
})

async function cluster(seed = 1) {
  const sim = new Simulation({
    seed,
    nodes: 3,
    stack: stack()
      .use(psync({ logEveryMs: 1 }))
      .use(divider())
      .use(totalOrder({ ackDelayMs: 1 }))
      .use(dispatcher({ machine: kv })),
    network: { delay: dist.uniform(0.5, 2) },
  })
  await sim.start()
  await sim.openAll({ port: 'g' })
  const client = (n: string) => kv.client(sim.host(n).group('g')!.get(DISPATCHER))
  const applied = new Map<string, AppliedCommand[]>()
  for (const n of sim.nodes) {
    const list: AppliedCommand[] = []
    applied.set(n, list)
    client(n).onApplied((c) => void list.push(c))
  }
  return { sim, client, applied }
}

const settle = <T>(p: Promise<T>) =>
  p.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error: error as DispatchError }),
  )

describe('typed commands', () => {
  it("submit resolves with the handler's result once applied here; every replica reaches the same state", async () => {
    const { sim, client, applied } = await cluster()
    const results: unknown[] = []
    sim.at(
      5,
      () =>
        void client('n1')
          .submit('set', { key: 'x', value: 1 })
          .then((r) => results.push(r)),
    )
    sim.at(
      6,
      () =>
        void client('n2')
          .submit('set', { key: 'x', value: 2 })
          .then((r) => results.push(r)),
    )
    sim.at(
      50,
      () =>
        void client('n3')
          .submit('incr', { key: 'x' })
          .then((r) => results.push(r)),
    )
    await sim.run({ until: 300 })
    // The first applied set returns undefined, the second the first's value; incr returns 3.
    expect(results).toHaveLength(3)
    expect(results).toContain(undefined)
    expect(results.at(-1)).toBe(3)
    for (const n of sim.nodes) expect([...client(n).state()]).toEqual([['x', 3]])
    const order = (n: string) => applied.get(n)!.map((c) => c.id)
    expect(order('n2')).toEqual(order('n1'))
    expect(order('n3')).toEqual(order('n1'))
  })

  it('a throwing handler gives the same failure everywhere and rejects the submitter with HANDLER_FAILED; nothing diverges', async () => {
    const { sim, client, applied } = await cluster(2)
    let outcome: Awaited<ReturnType<typeof settle>> | undefined
    sim.at(5, async () => {
      outcome = await settle(client('n2').submit('incr', { key: 'missing' }))
    })
    await sim.run({ until: 200 })
    expect(outcome?.ok).toBe(false)
    const error = (outcome as { error: DispatchError }).error
    expect(DispatchError.isInstance(error)).toBe(true)
    expect(error.code).toBe('HANDLER_FAILED')
    expect(error.failure).toEqual({ name: 'RangeError', message: 'no key missing', code: 'NO_KEY' })
    for (const n of sim.nodes)
      expect(applied.get(n)!.map((c) => c.outcome)).toEqual([
        { ok: false, failure: { name: 'RangeError', message: 'no key missing', code: 'NO_KEY' } },
      ])
    expect(sim.host('n1').stats().dispatcher!.failed).toBe(1)
  })

  it('an async handler is a failure at every replica (ASYNC_HANDLER), not a result that lands later', async () => {
    const { sim, client, applied } = await cluster(3)
    let outcome: Awaited<ReturnType<typeof settle>> | undefined
    sim.at(5, async () => {
      outcome = await settle(client('n1').submit('later', { key: 'k' }))
    })
    await sim.run({ until: 200 })
    expect((outcome as { error: DispatchError }).error.failure?.code).toBe('ASYNC_HANDLER')
    for (const n of sim.nodes) expect(applied.get(n)![0]!.outcome.ok).toBe(false)
  })

  it('the pull style yields every applied command in order; return() ends it', async () => {
    const { sim, client } = await cluster(4)
    const it = client('n3').applied()
    sim.at(5, () => void client('n1').submit('set', { key: 'a', value: 1 }))
    sim.at(6, () => void client('n2').submit('set', { key: 'b', value: 2 }))
    await sim.run({ until: 200 })
    const first = await it.next()
    const second = await it.next()
    expect([first.value!.tag, second.value!.tag]).toEqual(['set', 'set'])
    expect(new Set([first.value!.args, second.value!.args])).toEqual(
      new Set([
        { key: 'a', value: 1 },
        { key: 'b', value: 2 },
      ]),
    )
    await it.return!()
    expect(await it.next()).toEqual({ value: undefined, done: true })
  })

  it('a restarted replica replays the log and rebuilds the same state', async () => {
    const { sim, client } = await cluster(5)
    sim.at(5, () => void client('n1').submit('set', { key: 'a', value: 1 }))
    sim.at(20, () => void client('n2').submit('incr', { key: 'a' }))
    await sim.run({ until: 200 })
    sim.crash('n3')
    await sim.restart('n3')
    await sim.run({ for: 300 })
    expect([...client('n3').state()]).toEqual([['a', 2]])
  })

  it('snapshot and restore round-trip the state; a bad snapshot throws INVALID_ARGUMENT', async () => {
    const { sim, client } = await cluster(6)
    sim.at(5, () => void client('n1').submit('set', { key: 'a', value: 7 }))
    await sim.run({ until: 200 })
    const control = client('n1').control
    const bytes = control.snapshot()
    control.restore(bytes)
    expect([...client('n1').state()]).toEqual([['a', 7]])
    expect(() => control.restore(new Uint8Array([1, 2, 3]))).toThrow(DispatchError)
    expect(() => control.restore('x' as never)).toThrow(/bytes of a snapshot/)
  })
})

describe('over a semantic Order', () => {
  it('classOfCommands ranks commands by tag and arguments: commands on one key stay in one order everywhere', async () => {
    // Commands on different keys commute: one class per key (a tiny hash), so only same-key
    // commands are ordered against each other.
    const classOf = classOfCommands((_tag, args) => {
      const key = (args as { key: string }).key
      return [...key].reduce((h, ch) => (h * 31 + ch.charCodeAt(0)) % 1000, 7)
    })
    const sim = new Simulation({
      seed: 11,
      nodes: 3,
      stack: stack()
        .use(psync({ logEveryMs: 1 }))
        .use(divider())
        .use(semanticOrder({ classOf, ackDelayMs: 1 }))
        .use(dispatcher({ machine: kv })),
      network: { delay: dist.uniform(0.5, 2) },
    })
    await sim.start()
    await sim.openAll({ port: 'g' })
    const client = (n: string) => kv.client(sim.host(n).group('g')!.get(DISPATCHER))
    for (let i = 0; i < 20; i++)
      sim.at(5 + i, () => {
        for (const n of sim.nodes)
          void client(n).submit('set', { key: `k${i % 4}`, value: i * 10 + Number(n[1]) })
      })
    await sim.run({ until: 500 })
    const states = sim.nodes.map((n) => JSON.stringify([...client(n).state()].sort()))
    expect(new Set(states).size).toBe(1)
    expect([...client('n1').state()].length).toBe(4)
    expect(classOf(new Uint8Array([0xc1]))).toBe(0)
    expect(() => classOfCommands(42 as never)).toThrow(/takes a function/)
  })
})

describe('bad input', () => {
  it('an unknown tag or unencodable arguments are refused at submit', async () => {
    const { client } = await cluster(7)
    const control = client('n1').control
    // Refused at submit: never sent, so not applied anywhere (`notApplied`).
    await expect(control.submit('nope', {})).rejects.toMatchObject({
      code: 'UNKNOWN_COMMAND',
      notApplied: true,
    })
    await expect(control.submit('set', { key: 'a', value: () => 1 })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      notApplied: true,
    })
    await expect(control.submit('set', { key: Symbol('s') })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      notApplied: true,
    })
    // The Order's refusal of bad options passes through with its own flag.
    await expect(
      control.submit('set', { key: 'a', value: 1 }, { level: 'bogus' } as never),
    ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', notApplied: true })
  })

  it('a delivered command with an unknown tag or undecodable bytes is a counted drop and an event, never a crash', async () => {
    const { sim, client, applied } = await cluster(8)
    const order = (n: string) => sim.host(n).group('g')!.get(ORDER)
    // Another version of the application (a tag this machine lacks), and plain garbage.
    sim.at(5, () => void order('n2').submit(encodeCommand({ tag: 'v2only', args: {}, nonce: 1 })))
    sim.at(6, () => void order('n2').submit(new Uint8Array([0xc1, 0xff, 0x00])))
    sim.at(20, () => void client('n1').submit('set', { key: 'ok', value: 1 }))
    await sim.run({ until: 300 })
    for (const n of sim.nodes) {
      const stats = sim.host(n).stats().dispatcher!
      expect(stats.droppedUnknownTag).toBe(1)
      expect(stats.droppedMalformed).toBe(1)
      expect(applied.get(n)!.map((c) => c.tag)).toEqual(['set'])
      expect([...client(n).state()]).toEqual([['ok', 1]])
    }
  })

  it('bad machines and options throw INVALID_ARGUMENT', () => {
    expect(() => dispatcher({} as never)).toThrow(/takes a machine/)
    expect(() => stateMachine({ initial: () => 0, commands: {} })).toThrow(/commands is empty/)
    expect(() => stateMachine({ initial: () => 0, commands: { a: 1 as never } })).toThrow(
      /command a is not a function/,
    )
    expect(() => stateMachine({ commands: { a: () => 1 } } as never)).toThrow(/initial/)
  })

  it('a closed group rejects what is pending with CLOSED', async () => {
    const { sim, client } = await cluster(9)
    sim.network.partition(['n1'], ['n2', 'n3'])
    const n1 = client('n1')
    const pending = settle(n1.submit('set', { key: 'a', value: 1 }))
    void sim.host('n1').group('g')!.close()
    await sim.run({ for: 50 })
    const outcome = await pending
    expect(outcome.ok).toBe(false)
    // It was sent: whether n2 and n3 order it is unknown here.
    const error = (outcome as { error: DispatchError }).error
    expect(error).toMatchObject({ code: 'CLOSED' })
    expect(notApplied(error)).toBe(false)
    await expect(n1.submit('set', { key: 'b', value: 1 })).rejects.toMatchObject({
      code: 'CLOSED',
      notApplied: true,
    })
  })
})
