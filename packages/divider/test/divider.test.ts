import {
  DIVIDER,
  defineChannel,
  FAILURE_DETECTION_CHANNEL,
  MEMBERSHIP_CHANNEL,
  OPERATIONS,
  XKernelError,
} from '@consul/xkernel'
import { describe, expect, it } from 'vitest'
import { allCheckers, cluster, probe } from './fixtures.js'

const on = (channel: { id: number }, text: string) =>
  new Uint8Array([channel.id, ...new TextEncoder().encode(text)])

describe('routing', () => {
  it('hands each message to every subscriber of its channel, acknowledgements only to those that asked', async () => {
    const { sim, conv, logs } = await cluster((l) => [
      probe('order', [OPERATIONS], l, { acknowledgements: true }),
      probe('membership', [MEMBERSHIP_CHANNEL], l),
      probe('watcher', [OPERATIONS, MEMBERSHIP_CHANNEL], l),
    ])
    sim.at(1, () => void conv('n1').send(on(OPERATIONS, 'set x')))
    sim.at(5, () => void conv('n2').send(on(MEMBERSHIP_CHANNEL, 'propose')))
    sim.at(9, () => void conv('n3').send(new Uint8Array(0)))
    sim.at(13, () => void conv('n3').send(on(FAILURE_DETECTION_CHANNEL, 'alive')))
    await sim.run({ until: 200 })
    for (const n of sim.nodes) {
      expect(logs.get(`${n}/order`)![0]!.delivered).toEqual(['n1:1', 'n3:1'])
      expect(logs.get(`${n}/membership`)![0]!.delivered).toEqual(['n2:1'])
      // Concurrent messages may come in either order (causal order only).
      expect([...logs.get(`${n}/watcher`)![0]!.delivered].sort()).toEqual(['n1:1', 'n2:1'])
      // Nobody here runs failure detection: counted, not delivered.
      expect(sim.host(n).stats().divider!.unrouted).toBe(1)
      expect(sim.host(n).group('g')!.get(DIVIDER).subscriptions()).toEqual({
        operations: ['order', 'watcher'],
        membership: ['membership', 'watcher'],
        '(acknowledgements)': ['order'],
      })
    }
    // The Divider's own trace records, typed through declaration merging (no sim edit).
    const routed = sim.history.declared('divider.routed', 'n1')
    expect(routed.map((r) => [r.data.id, r.data.channel, r.data.to])).toEqual([
      ['n1:1', 'operations', ['order', 'watcher']],
      ...routed.slice(1).map((r) => [r.data.id, r.data.channel, r.data.to]),
    ])
    expect(routed.find((r) => r.data.channel === '')?.data.to).toEqual(['order'])
    expect(routed.find((r) => r.data.channel === 'failure-detection')?.data.to).toEqual([])
    expect(sim.check(allCheckers)).toEqual([])
  })

  it('hands every wave, in order and none skipped, to each wave subscriber with only its messages', async () => {
    const { sim, conv, logs } = await cluster((l) => [
      probe('order', [OPERATIONS], l, { deliver: false }),
      probe('membership', [MEMBERSHIP_CHANNEL], l, { deliver: false }),
    ])
    for (let i = 0; i < 12; i++) {
      const node = sim.nodes[i % 3]!
      const channel = i % 4 === 0 ? MEMBERSHIP_CHANNEL : OPERATIONS
      sim.at(1 + i * 3, () => void conv(node).send(on(channel, `m${i}`)))
    }
    sim.at(60, () => {
      for (const n of sim.nodes) conv(n).send(new Uint8Array(0))
    })
    await sim.run({ until: 400 })
    const order = logs.get('n1/order')![0]!.waves
    const membership = logs.get('n1/membership')![0]!.waves
    expect(order.length).toBeGreaterThan(3)
    expect(order.map(([w]) => w)).toEqual(order.map((_, i) => i))
    expect(membership.map(([w]) => w)).toEqual(order.map(([w]) => w))
    // Every message went to exactly one of them, in some wave.
    const all = [...order, ...membership].flatMap(([, ids]) => ids)
    expect(new Set(all).size).toBe(12)
    for (const n of ['n2', 'n3']) expect(logs.get(`${n}/order`)![0]!.waves).toEqual(order)
    expect(sim.check(allCheckers)).toEqual([])
  })

  it('routes the replay of the log after a restart again, to the subscriptions made at open', async () => {
    const { sim, conv, logs } = await cluster((l) => [probe('order', [OPERATIONS], l)])
    for (let i = 0; i < 10; i++)
      sim.at(1 + i, () => void conv(sim.nodes[i % 3]!).send(on(OPERATIONS, `m${i}`)))
    sim.at(40, () => sim.crash('n2'))
    sim.at(60, async () => void (await sim.restart('n2')))
    await sim.run({ until: 400 })
    const [before, after] = logs.get('n2/order')!
    expect(after!.delivered.length).toBeGreaterThanOrEqual(before!.delivered.length)
    expect(after!.delivered.slice(0, before!.delivered.length)).toEqual(before!.delivered)
    expect(sim.check(allCheckers)).toEqual([])
  })

  it('keeps its guarantees under loss, duplication and reordering (8 seeds)', async () => {
    for (let seed = 1; seed <= 8; seed++) {
      const { sim, conv } = await cluster(
        (l) => [
          probe('order', [OPERATIONS], l, { acknowledgements: true }),
          probe('membership', [MEMBERSHIP_CHANNEL], l),
        ],
        { seed, loss: 0.2 },
      )
      for (let i = 0; i < 30; i++) {
        const channel = i % 3 === 0 ? MEMBERSHIP_CHANNEL : OPERATIONS
        sim.at(1 + i * 2, () => void conv(sim.nodes[i % 3]!).send(on(channel, `m${i}`)))
      }
      await sim.run({ until: 3000 })
      expect(sim.check(allCheckers), `seed ${seed}`).toEqual([])
    }
  })
})

describe('observers', () => {
  it('see every frame heard from a member, duplicates included', async () => {
    const { sim, conv, logs } = await cluster(
      (l) => [probe('fd', [FAILURE_DETECTION_CHANNEL], l, { observe: true })],
      { loss: 0.3, seed: 3 },
    )
    for (let i = 0; i < 20; i++)
      sim.at(1 + i, () => void conv(sim.nodes[i % 3]!).send(on(OPERATIONS, `m${i}`)))
    await sim.run({ until: 2000 })
    const heard = logs.get('n1/fd')![0]!.heard
    expect(new Set(heard.map((h) => h.member))).toEqual(new Set(['n2', 'n3']))
    const kinds = new Set(heard.map((h) => h.kind))
    expect(kinds.has('message')).toBe(true)
    expect(kinds.has('duplicate') || kinds.has('request') || kinds.has('held')).toBe(true)
  })
})

describe('bad arguments', () => {
  it('subscribe refuses unregistered channels, no channel, no handler, no name', async () => {
    const { sim } = await cluster(() => [])
    const d = sim.host('n1').group('g')!.get(DIVIDER)
    const fake = { name: 'fake', id: 0x01, kind: 'monitoring' as const }
    expect(() => d.subscribe('x', { channels: [fake], deliver: () => {} })).toThrow(
      /not registered \(create it with defineChannel\)/,
    )
    expect(() => d.subscribe('x', { channels: [], deliver: () => {} })).toThrow(
      /at least one channel/,
    )
    expect(() => d.subscribe('x', { channels: [OPERATIONS] })).toThrow(/needs deliver or wave/)
    expect(() => d.subscribe('', { channels: [OPERATIONS], deliver: () => {} })).toThrow(
      /protocol name/,
    )
    expect(() => d.subscribe('x', { channels: [OPERATIONS], deliver: 3 as never })).toThrow(
      /deliver must be a function/,
    )
    expect(() => d.observe(3 as never)).toThrow(/observe takes a function/)
  })
})

describe('defineChannel', () => {
  it('registers once; a taken byte or name is a clash naming both', () => {
    const a = defineChannel('test-a', 0x61, 'monitoring')
    expect(defineChannel('test-a', 0x61, 'monitoring')).toBe(a)
    const clash = (() => {
      try {
        defineChannel('test-b', 0x61, 'monitoring')
      } catch (error) {
        return error
      }
    })()
    expect(XKernelError.isInstance(clash) && clash.code).toBe('CHANNEL_CLASH')
    expect(String(clash)).toMatch(/0x61 is taken by 'test-a'/)
    expect(() => defineChannel('test-a', 0x62, 'monitoring')).toThrow(/registered with id 0x61/)
    expect(() => defineChannel('membership', 0x4d, 'operation')).toThrow(/taken by 'membership'/)
    expect(() => defineChannel('x', 256, 'monitoring')).toThrow(/must be a byte/)
    expect(() => defineChannel('', 1, 'monitoring')).toThrow(/non-empty name/)
    expect(() => defineChannel('y', 2, 'other' as never)).toThrow(/kind must be/)
  })
})
