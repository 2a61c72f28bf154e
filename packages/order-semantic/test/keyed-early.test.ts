/**
 * Early delivery in the key mode, in the simulator: a write goes before its wave completes
 * where the senders before its own have passed the wave (also while a member is cut off), a
 * conflicting one waits for the missing command before it, an own one waits until durable;
 * and, on one workload, how much earlier than the class mode (reads rank 0, writes rank 1).
 */
import { divider } from '@consul/divider'
import { psync } from '@consul/psync'
import { dist, Simulation } from '@consul/sim'
import { type NodeId, ORDER, PSYNC, stack } from '@consul/xkernel'
import { describe, expect, it } from 'vitest'
import { type CommandKeys, type SemanticOrderOptions, semanticOrder } from '../src/index.js'

const text = new TextEncoder()
const untext = new TextDecoder()
/** `[w|r] key name`: a write or a read of `key`. */
const command = (op: 'w' | 'r', key: string, name: string) => text.encode(`${op} ${key} ${name}`)
const keysOf = (c: Uint8Array): CommandKeys => {
  const [op, key = ''] = untext.decode(c).split(' ')
  return { keys: [key], write: op === 'w' }
}
const classOf = (c: Uint8Array) => (c[0] === 'w'.charCodeAt(0) ? 1 : 0)
const nameOf = (c: Uint8Array) => untext.decode(c).split(' ')[2]!

async function cluster(mode: Pick<SemanticOrderOptions, 'classOf' | 'keysOf'>, logEveryMs = 1) {
  const sim = new Simulation({
    seed: 1,
    nodes: 3,
    stack: stack()
      .use(psync({ logEveryMs }))
      .use(divider())
      .use(semanticOrder({ ...mode, ackDelayMs: 1 })),
    network: { delay: dist.constant(2) },
  })
  await sim.start()
  await sim.openAll({ port: 'g' })
  const deliveries: { node: NodeId; name: string; wave: number; time: number }[] = []
  const completedAt = new Map<NodeId, Map<number, number>>()
  for (const node of sim.nodes) {
    const group = sim.host(node).group('g')!
    group
      .get(ORDER)
      .onDeliver((c) =>
        deliveries.push({ node, name: nameOf(c.command), wave: c.position.wave, time: sim.now }),
      )
    const waves = new Map<number, number>()
    completedAt.set(node, waves)
    group.get(PSYNC).onWave((wave) => waves.set(wave, sim.now))
  }
  const order = (node: NodeId) => sim.host(node).group('g')!.get(ORDER)
  const delivered = (node: NodeId) => deliveries.filter((d) => d.node === node).map((d) => d.name)
  return { sim, deliveries, completedAt, order, delivered }
}

describe('early delivery in the key mode', () => {
  it('delivers a write of the first sender at the others before its wave completes', async () => {
    const { sim, deliveries, completedAt, order } = await cluster({ keysOf })
    sim.at(10, () => void order('n1').submit(command('w', 'x', 'x1')))
    await sim.run({ until: 200 })
    for (const node of ['n2', 'n3']) {
      const d = deliveries.find((r) => r.node === node && r.name === 'x1')!
      expect(d.time, node).toBeLessThan(completedAt.get(node)!.get(d.wave)!)
    }
    expect(deliveries.filter((d) => d.name === 'x1')).toHaveLength(3)
  })

  it('goes on with writes while a member is cut off, where the senders before are here', async () => {
    const { sim, order, delivered } = await cluster({ keysOf })
    sim.network.isolate('n3')
    sim.at(10, () => {
      void order('n1').submit(command('w', 'x', 'a'))
      void order('n2').submit(command('w', 'y', 'b'))
    })
    await sim.run({ until: 100 })
    // No wave completes without n3, yet n1 and n2 apply both (n3 sorts after them).
    expect([...delivered('n1')].sort()).toEqual(['a', 'b'])
    expect([...delivered('n2')].sort()).toEqual(['a', 'b'])
    expect(order('n1').atWaveBoundary()).toBe(false)
    sim.at(110, () => sim.network.heal())
    await sim.run({ until: 600 })
    for (const node of sim.nodes) {
      expect([...delivered(node)].sort(), node).toEqual(['a', 'b'])
      expect(order(node).atWaveBoundary(), node).toBe(true)
    }
  })

  it('a command of a sender after a silent one waits for the wave; commuting or not', async () => {
    const { sim, order, delivered } = await cluster({ keysOf })
    sim.network.isolate('n1')
    // n1 sorts first and is cut off: it may still have a wave-0 command on x.
    sim.at(10, () => void order('n3').submit(command('w', 'z', 'c')))
    await sim.run({ until: 100 })
    for (const node of ['n2', 'n3']) expect(delivered(node), node).toEqual([])
    sim.at(110, () => sim.network.heal())
    await sim.run({ until: 600 })
    for (const node of sim.nodes) expect(delivered(node), node).toEqual(['c'])
  })

  it('orders conflicting writes of one wave by sender everywhere; a commuting one may pass', async () => {
    const { sim, order, delivered } = await cluster({ keysOf })
    sim.at(10, () => {
      void order('n3').submit(command('w', 'x', 'n3x'))
      void order('n2').submit(command('w', 'y', 'n2y'))
      void order('n1').submit(command('w', 'x', 'n1x'))
    })
    await sim.run({ until: 600 })
    for (const node of sim.nodes) {
      const seq = delivered(node)
      expect(seq.indexOf('n1x'), node).toBeLessThan(seq.indexOf('n3x'))
      expect([...seq].sort(), node).toEqual(['n1x', 'n2y', 'n3x'])
    }
  })

  it('does not deliver an own command before it is durable', async () => {
    const { sim, order, deliveries } = await cluster({ keysOf }, 20)
    sim.at(10, () => void order('n1').submit(command('w', 'x', 'fragile')))
    await sim.run({ until: 15 })
    expect(order('n1').position().delivered).toBe(0)
    sim.at(16, () => sim.crash('n1'))
    sim.at(60, async () => void (await sim.restart('n1')))
    await sim.run({ until: 500 })
    expect(deliveries.filter((d) => d.name === 'fragile')).toEqual([])
  })

  it('delivers writes earlier than the class mode on the same workload', async () => {
    const latency = async (mode: Pick<SemanticOrderOptions, 'classOf' | 'keysOf'>) => {
      const { sim, order, deliveries } = await cluster(mode)
      const submittedAt = new Map<string, number>()
      let n = 0
      // Writes on 16 keys from every replica, one every 3 ms each.
      for (let t = 10; t < 400; t += 3)
        sim.at(t, () => {
          for (const node of sim.nodes) {
            const name = `${node}.${n++}`
            submittedAt.set(name, sim.now)
            void order(node).submit(command('w', `k${n % 16}`, name))
          }
        })
      await sim.run({ until: 800 })
      const waits = deliveries.map((d) => d.time - submittedAt.get(d.name)!)
      expect(waits.length).toBe(submittedAt.size * 3)
      return waits.reduce((a, b) => a + b, 0) / waits.length
    }
    const keyed = await latency({ keysOf })
    const classes = await latency({ classOf })
    console.log(
      `mean submit → delivery, writes on 16 keys: keys ${keyed.toFixed(2)} ms, classes ${classes.toFixed(2)} ms`,
    )
    expect(keyed).toBeLessThan(classes)
  })
})
