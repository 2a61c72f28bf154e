/**
 * Early delivery really happens, and only where it is safe: rank-0 commands go before their
 * wave completes (even while a member is cut off), higher ranks and later waves wait for
 * completion, and an own command waits until it is durable.
 */
import { divider } from '@consul/divider'
import { psync } from '@consul/psync'
import { dist, Simulation } from '@consul/sim'
import { type NodeId, ORDER, type OrderedCommand, PSYNC, stack } from '@consul/xkernel'
import { describe, expect, it } from 'vitest'
import { OrderError, semanticOrder } from '../src/index.js'

const text = new TextEncoder()
const classOf = (command: Uint8Array) => command[0]!
const command = (rank: number, name: string) => Uint8Array.of(rank, ...text.encode(name))
const nameOf = (c: OrderedCommand) => new TextDecoder().decode(c.command.subarray(1))

interface Delivery {
  readonly node: NodeId
  readonly name: string
  readonly wave: number
  readonly time: number
}

async function cluster(options: { logEveryMs?: number } = {}) {
  const sim = new Simulation({
    seed: 1,
    nodes: 3,
    stack: stack()
      .use(psync({ logEveryMs: options.logEveryMs ?? 1 }))
      .use(divider())
      .use(semanticOrder({ classOf, ackDelayMs: 1 })),
    network: { delay: dist.constant(2) },
  })
  await sim.start()
  await sim.openAll({ port: 'g' })
  const deliveries: Delivery[] = []
  /** node → wave → virtual time Psync reported it complete there. */
  const completedAt = new Map<NodeId, Map<number, number>>()
  for (const node of sim.nodes) {
    const group = sim.host(node).group('g')!
    group
      .get(ORDER)
      .onDeliver((c) =>
        deliveries.push({ node, name: nameOf(c), wave: c.position.wave, time: sim.now }),
      )
    const waves = new Map<number, number>()
    completedAt.set(node, waves)
    group.get(PSYNC).onWave((wave) => waves.set(wave, sim.now))
  }
  const order = (node: NodeId) => sim.host(node).group('g')!.get(ORDER)
  const conversation = (node: NodeId) => sim.host(node).group('g')!.get(PSYNC)
  const delivered = (node: NodeId) => deliveries.filter((d) => d.node === node).map((d) => d.name)
  return { sim, deliveries, completedAt, order, conversation, delivered }
}

describe('early delivery', () => {
  it('delivers a rank-0 command at the other replicas before its wave completes', async () => {
    const { sim, deliveries, completedAt, order } = await cluster()
    sim.at(10, () => void order('n1').submit(command(0, 'x')))
    await sim.run({ until: 200 })
    for (const node of ['n2', 'n3']) {
      const d = deliveries.find((r) => r.node === node && r.name === 'x')!
      const complete = completedAt.get(node)!.get(d.wave)!
      // Received at 10 + commit + 2 ms of network; the wave needs the others' acks as well.
      expect(d.time, node).toBeLessThan(complete)
      expect(sim.host(node).stats()['order-semantic']?.deliveredEarly).toBe(1)
    }
    expect(deliveries.filter((d) => d.name === 'x')).toHaveLength(3)
  })

  it("delivers rank-0 commands while a member is cut off; an 'agreed' submit resolves once another member has it, a 'safe' one once all have", async () => {
    const { sim, order, conversation, delivered } = await cluster()
    sim.network.isolate('n3')
    let resolved: OrderedCommand | undefined
    let safe: OrderedCommand | undefined
    sim.at(10, () => {
      void order('n1')
        .submit(command(0, 'a'), { level: 'agreed' })
        .then((c) => {
          resolved = c
        })
      // Same turn, same message; only the level differs.
      void order('n1')
        .submit(command(0, 'b'))
        .then((c) => {
          safe = c
        })
    })
    await sim.run({ until: 100 })
    // n3 is silent, so the wave of `a` cannot complete anywhere …
    const wave = conversation('n1').depth(resolved!.message)!
    expect(conversation('n1').waveComplete(wave)).toBe(false)
    expect(conversation('n2').waveComplete(wave)).toBe(false)
    // … yet n1 and n2 have delivered it, and n1's 'agreed' submit resolved; the 'safe' one
    // waits for n3.
    expect(delivered('n1')).toEqual(['a', 'b'])
    expect(delivered('n2')).toEqual(['a', 'b'])
    expect(delivered('n3')).toEqual([])
    expect(resolved?.sender).toBe('n1')
    expect(safe).toBeUndefined()
    // Delivered ahead of the wave: not a wave boundary, no checkpoint now.
    expect(order('n2').atWaveBoundary()).toBe(false)
    expect(order('n2').position()).toEqual({ wave, delivered: 2 })
    expect(() => order('n2').checkpoint()).toThrow(OrderError)
    expect(() => order('n2').checkpoint()).toThrow(/wave boundary/)
    sim.at(110, () => sim.network.heal())
    await sim.run({ until: 600 })
    expect(safe?.sender).toBe('n1')
    expect(conversation('n1').stable(safe!.message)).toBe(true)
    for (const node of sim.nodes) {
      expect(delivered(node), node).toEqual(['a', 'b'])
      expect(order(node).atWaveBoundary(), node).toBe(true)
      expect(order(node).position().wave, node).toBeGreaterThan(wave)
    }
    expect(() => order('n2').checkpoint()).not.toThrow()
  })

  it('makes a higher-rank command wait for its wave to complete', async () => {
    const { sim, order, delivered, deliveries, completedAt } = await cluster()
    sim.network.isolate('n3')
    let resolved = false
    sim.at(10, () => {
      void order('n1')
        .submit(command(1, 'r1'))
        .then(() => {
          resolved = true
        })
    })
    await sim.run({ until: 200 })
    for (const node of sim.nodes) expect(delivered(node), node).toEqual([])
    expect(resolved).toBe(false)
    sim.at(210, () => sim.network.heal())
    await sim.run({ until: 700 })
    expect(resolved).toBe(true)
    for (const node of sim.nodes) {
      const d = deliveries.find((r) => r.node === node && r.name === 'r1')!
      // Delivered in the very step Psync completed its wave there, not before.
      expect(d.time, node).toBe(completedAt.get(node)!.get(d.wave))
      expect(sim.host(node).stats()['order-semantic']?.deliveredAtWave, node).toBe(1)
    }
  })

  it('makes a rank-0 command of a later wave wait until the earlier waves are complete', async () => {
    const { sim, order, conversation, delivered } = await cluster()
    sim.network.isolate('n3')
    sim.at(10, () => void order('n1').submit(command(0, 'first')))
    sim.at(20, () => void order('n1').submit(command(1, 'blocker')))
    // n2 has seen both by now: its command is in a later wave than `first` and `blocker`.
    sim.at(60, () => void order('n2').submit(command(0, 'later')))
    await sim.run({ until: 200 })
    const first = conversation('n2').wave(0)
    expect(first.map((m) => m.sender)).toEqual(['n1'])
    for (const node of ['n1', 'n2']) expect(delivered(node), node).toEqual(['first'])
    sim.at(210, () => sim.network.heal())
    await sim.run({ until: 800 })
    // Everywhere: `first` (wave 0), then `blocker` (rank 1, at its wave's completion), then
    // `later`, whose wave comes after.
    for (const node of sim.nodes)
      expect(delivered(node), node).toEqual(['first', 'blocker', 'later'])
  })

  it('orders a wave by rank, then sender, at completion', async () => {
    const { sim, order, delivered } = await cluster()
    sim.network.isolate('n3')
    // Concurrent: one wave. Rank 0 goes early where it is received; the rest at completion.
    sim.at(10, () => {
      void order('n2').submit(command(2, 'n2-r2'))
      void order('n2').submit(command(0, 'n2-r0'))
      void order('n1').submit(command(1, 'n1-r1'))
      void order('n1').submit(command(2, 'n1-r2'))
    })
    sim.at(100, () => sim.network.heal())
    await sim.run({ until: 700 })
    for (const node of sim.nodes)
      expect(delivered(node), node).toEqual(['n2-r0', 'n1-r1', 'n1-r2', 'n2-r2'])
  })

  it('does not deliver an own command before it is durable (a crash could take it away)', async () => {
    // A long group commit: the command is sent at 10 but durable only at the next commit.
    const { sim, order, delivered, deliveries } = await cluster({ logEveryMs: 20 })
    let resolved = false
    sim.at(10, () => {
      void order('n1')
        .submit(command(0, 'fragile'))
        .then(() => {
          resolved = true
        })
    })
    await sim.run({ until: 15 })
    expect(order('n1').position().delivered).toBe(0)
    expect(resolved).toBe(false)
    sim.at(16, () => sim.crash('n1'))
    sim.at(60, async () => void (await sim.restart('n1')))
    await sim.run({ until: 500 })
    // The message died with the crash: no replica, no incarnation ever applied it.
    expect(deliveries.filter((d) => d.name === 'fragile')).toEqual([])
    expect(delivered('n2')).toEqual([])
  })
})
