import { StorageCorruptedError } from '@consul/xkernel'
import { describe, expect, it } from 'vitest'
import {
  dist,
  type HistoryRecord,
  noCreation,
  noDuplication,
  runScenario,
  Simulation,
} from '../src/index.js'
import { COUNTER, FLOOD, floodStack } from './fixtures/flood.js'
import floodScenario from './fixtures/flood-scenario.js'

async function floodSim(
  seed: number,
  options: { network?: object; disk?: object; stack?: ReturnType<typeof floodStack> } = {},
) {
  const sim = new Simulation({
    seed,
    nodes: 3,
    stack: options.stack ?? floodStack(),
    ...(options as object),
  })
  await sim.start()
  await sim.openAll({ port: 'f' })
  return sim
}

type Sim = Awaited<ReturnType<typeof floodSim>>

const send = (sim: Sim, node: string, text = 'x') =>
  sim.host(node).group('f')!.get(FLOOD).send(text)

const deliveredBy = (sim: Sim, node: string) => sim.history.delivered(node).map((r) => r.id)

describe('determinism', () => {
  it('same seed gives the same trace hash, over 100 swarm seeds', async () => {
    const hashes = new Set<string>()
    for (let seed = 1; seed <= 100; seed++) {
      const a = await runScenario(floodScenario, { seed })
      const b = await runScenario(floodScenario, { seed })
      expect(a.traceHash).toBe(b.traceHash)
      expect(a.events).toBe(b.events)
      expect(a.events).toBeGreaterThan(100)
      hashes.add(a.traceHash)
    }
    // Different seeds draw different worlds.
    expect(hashes.size).toBe(100)
  })

  it('same seed, same run with every fault class on, disk corruption included', async () => {
    const everything = { ...floodScenario, faults: 'swarm' as const }
    const seen = { corrupt: 0, jumps: 0, diskCorrupt: 0 }
    for (let seed = 1; seed <= 40; seed++) {
      const a = await runScenario(everything, { seed })
      const b = await runScenario(everything, { seed })
      expect([a.traceHash, a.events, a.error]).toEqual([b.traceHash, b.events, b.error])
      if (a.environment.includes('corrupt=')) seen.corrupt++
      if (a.environment.includes('jumps=')) seen.jumps++
      if (a.environment.includes('diskCorrupt=')) seen.diskCorrupt++
    }
    expect(seen.corrupt).toBeGreaterThan(20)
    expect(seen.jumps).toBeGreaterThan(20)
    expect(seen.diskCorrupt).toBeGreaterThan(15)
  })

  it('the flooding scenario passes no-creation and no-duplication on every seed', async () => {
    for (let seed = 100; seed < 130; seed++) {
      const result = await runScenario(floodScenario, { seed })
      expect(result.violations, `seed ${seed}`).toEqual([])
      expect(result.error).toBeUndefined()
    }
  })
})

describe('network faults', () => {
  it('delivers after exactly the constant link delay', async () => {
    const sim = await floodSim(1, { network: { delay: dist.constant(5) } })
    sim.at(10, () => void send(sim, 'n1'))
    await sim.run({ until: 100 })
    const first = sim.history.delivered('n2')[0]!
    expect(first.time).toBe(15)
  })

  it('loses everything at loss 1 and about the configured share at 0.3', async () => {
    const all = await floodSim(2, { network: { loss: 1 } })
    all.at(1, () => void send(all, 'n1'))
    await all.run({ until: 100 })
    expect(all.history.delivered()).toHaveLength(0)
    expect(all.network.counters.droppedLoss).toBe(2)

    const some = await floodSim(3, { network: { loss: 0.3 } })
    some.every(1, 2001, () => void send(some, 'n1'))
    await some.run({ until: 3000 })
    const c = some.network.counters
    const share = c.droppedLoss / c.sent
    expect(share).toBeGreaterThan(0.25)
    expect(share).toBeLessThan(0.35)
  })

  it('duplicates datagrams, and the receiver sees both copies', async () => {
    const sim = await floodSim(4, { network: { duplicate: 1 } })
    sim.at(1, () => void send(sim, 'n1'))
    await sim.run({ until: 100 })
    expect(sim.network.counters.duplicated).toBeGreaterThan(0)
    expect(sim.host('n2').stats().flood!.duplicates).toBeGreaterThan(0)
    expect(deliveredBy(sim, 'n2')).toHaveLength(1)
  })

  it('reorders with extra delay', async () => {
    const sim = await floodSim(5, {
      network: { delay: dist.constant(1), reorder: 0.5, reorderMs: 50 },
    })
    const sent: string[] = []
    for (let i = 0; i < 50; i++) sim.at(1 + i * 0.1, () => void sent.push(send(sim, 'n1', `m${i}`)))
    await sim.run({ until: 500 })
    const order = deliveredBy(sim, 'n2').filter((id) => id!.startsWith('n1:'))
    expect(order).toHaveLength(50)
    expect(order).not.toEqual(sent)
    expect([...order].sort()).toEqual([...sent].sort())
  })

  it('partitions cut both ways, one-way blocks cut one way, heal restores', async () => {
    const sim = await floodSim(6, { stack: floodStack({ relay: false }) })
    sim.network.partition(['n1'], ['n2', 'n3'])
    sim.at(1, () => {
      send(sim, 'n1', 'p1')
      send(sim, 'n2', 'p2')
    })
    sim.at(50, () => {
      sim.network.heal()
      sim.network.block('n1', 'n2')
      send(sim, 'n1', 'b1')
      send(sim, 'n2', 'b2')
    })
    await sim.run({ until: 200 })
    expect(deliveredBy(sim, 'n2').some((id) => id!.endsWith(':p1'))).toBe(false)
    expect(deliveredBy(sim, 'n1').some((id) => id!.endsWith(':p2'))).toBe(false)
    expect(deliveredBy(sim, 'n3').some((id) => id!.endsWith(':p2'))).toBe(true)
    expect(deliveredBy(sim, 'n2').some((id) => id!.endsWith(':b1'))).toBe(false)
    expect(deliveredBy(sim, 'n3').some((id) => id!.endsWith(':b1'))).toBe(true)
    expect(deliveredBy(sim, 'n1').some((id) => id!.endsWith(':b2'))).toBe(true)
    expect(sim.network.reachable('n2', 'n1')).toBe(true)
    expect(sim.network.reachable('n1', 'n2')).toBe(false)
  })

  it('isolate and splitMajority', async () => {
    const sim = new Simulation({ seed: 7, nodes: 5, stack: floodStack() })
    sim.network.isolate('n3')
    for (const other of ['n1', 'n2', 'n4', 'n5']) {
      expect(sim.network.reachable('n3', other)).toBe(false)
      expect(sim.network.reachable(other, 'n3')).toBe(false)
    }
    expect(sim.network.reachable('n1', 'n2')).toBe(true)
    sim.network.heal()
    const { majority, minority } = sim.network.splitMajority()
    expect(majority).toHaveLength(3)
    expect(minority).toHaveLength(2)
    expect(sim.network.reachable(majority[0]!, minority[0]!)).toBe(false)
    expect(sim.network.reachable(minority[0]!, majority[0]!)).toBe(false)
    expect(sim.network.reachable(majority[0]!, majority[1]!)).toBe(true)
  })

  it('a clog delays datagrams without losing them', async () => {
    const sim = await floodSim(8, {
      network: { delay: dist.constant(1) },
      stack: floodStack({ relay: false }),
    })
    sim.network.clog('n1', 'n2', 100)
    sim.at(10, () => void send(sim, 'n1'))
    await sim.run({ until: 300 })
    expect(sim.history.delivered('n2')[0]!.time).toBe(100)
    expect(sim.history.delivered('n3')[0]!.time).toBe(11)
  })

  it('rejects bad link settings with RangeError', () => {
    const sim = new Simulation({ seed: 1, nodes: 2, stack: floodStack() })
    expect(() => sim.network.configure({ loss: 2 })).toThrow(RangeError)
    expect(() => sim.network.configure({ duplicate: -1 })).toThrow(RangeError)
    expect(() => sim.network.block('n1', 'zz')).toThrow(/unknown node/)
    expect(() => new Simulation({ seed: 1.5, nodes: 2, stack: floodStack() })).toThrow(RangeError)
    expect(() => new Simulation({ seed: 1, nodes: 0, stack: floodStack() })).toThrow(RangeError)
  })
})

describe('host faults', () => {
  it('a crash silences the host: no timers, no receipt, datagrams to it are dropped', async () => {
    const sim = await floodSim(9)
    let fired = 0
    sim.host('n2').clock.setTimer(50, () => fired++)
    sim.at(10, () => sim.crash('n2'))
    sim.at(20, () => void send(sim, 'n1'))
    await sim.run({ until: 100 })
    expect(fired).toBe(0)
    expect(sim.isUp('n2')).toBe(false)
    expect(() => sim.host('n2')).toThrow(/down/)
    expect(deliveredBy(sim, 'n2')).toHaveLength(0)
    expect(sim.network.counters.droppedDown).toBeGreaterThan(0)
  })

  it('a crash loses unsynced writes and keeps synced ones; restart recovers the group', async () => {
    const sim = await floodSim(10)
    const c = () => sim.host('n1').group('f')!.get(COUNTER)
    sim.at(1, async () => {
      await c().increment()
      await c().increment()
      c().incrementUnsynced()
    })
    sim.at(10, () => sim.crash('n1'))
    sim.at(20, async () => {
      await sim.restart('n1')
    })
    await sim.run({ until: 50 })
    const group = sim.host('n1').group('f')!
    expect(group.restoring).toBe(true)
    expect(group.get(COUNTER).value()).toBe(2)
    expect(sim.incarnation('n1')).toBe(1)
    expect(sim.history.of('crash', 'n1')).toHaveLength(1)
    expect(sim.history.of('restart', 'n1')).toHaveLength(1)
  })

  it('await sync() resumes in the same virtual instant as the disk completion', async () => {
    const sim = await floodSim(11, { disk: { syncDelay: dist.constant(3) } })
    const c = () => sim.host('n1').group('f')!.get(COUNTER)
    sim.at(5, () => void c().increment())
    await sim.run({ until: 20 })
    expect(c().lastDurableAt()).toBe(8)
  })

  it('a crash with corruptOnCrash 1 leaves a record that reads as StorageCorruptedError', async () => {
    const sim = await floodSim(12, { disk: { corruptOnCrash: 1 } })
    sim.at(1, () => void sim.host('n1').group('f')!.get(COUNTER).incrementUnsynced())
    sim.at(2, () => sim.crash('n1'))
    await sim.run({ until: 5 })
    expect(() => sim.disk('n1').get('counter/f/value')).toThrow(StorageCorruptedError)
  })

  it('setDiskFaults changes disk corruption from now on, and rejects a non-probability', async () => {
    const sim = await floodSim(12)
    expect(sim.diskFaults()).toEqual({ corruptOnCrash: 0 })
    expect(() => sim.setDiskFaults({ corruptOnCrash: 1.5 })).toThrow(RangeError)
    expect(() => sim.setDiskFaults({ corruptOnCrash: Number.NaN })).toThrow(/corruptOnCrash/)
    expect(sim.diskFaults()).toEqual({ corruptOnCrash: 0 })
    sim.setDiskFaults({})
    expect(sim.diskFaults()).toEqual({ corruptOnCrash: 0 })
    sim.setDiskFaults({ corruptOnCrash: 1 })
    sim.at(1, () => void sim.host('n1').group('f')!.get(COUNTER).incrementUnsynced())
    sim.at(2, () => sim.crash('n1'))
    await sim.run({ until: 5 })
    expect(() => sim.disk('n1').get('counter/f/value')).toThrow(StorageCorruptedError)
  })

  it('a pause defers timers and deliveries to its end', async () => {
    const sim = await floodSim(13, {
      network: { delay: dist.constant(1) },
      stack: floodStack({ relay: false }),
    })
    let firedAt = -1
    sim.at(5, () => {
      sim.pause('n2', 100)
      sim.host('n2').clock.setTimer(10, () => {
        firedAt = sim.now
      })
      send(sim, 'n1')
    })
    await sim.run({ until: 300 })
    expect(firedAt).toBe(105)
    expect(sim.history.delivered('n2')[0]!.time).toBe(105)
    expect(sim.history.delivered('n3')[0]!.time).toBe(6)
    // The paused host's clock says how late it ran (local health); the others were on time.
    expect(sim.host('n2').clock.lag!()).toBe(90)
    expect(sim.host('n3').clock.lag!()).toBe(0)
    await sim.run({ until: 2300 })
    expect(sim.host('n2').clock.lag!()).toBe(0)
  })

  it('drift makes a host clock run fast; jumpClock moves it forward', async () => {
    const sim = await floodSim(14)
    sim.drift('n1', 100_000) // +10 %
    await sim.run({ until: 1000 })
    expect(sim.host('n1').clock.now()).toBeCloseTo(1100, 6)
    expect(sim.host('n2').clock.now()).toBe(1000)
    sim.jumpClock('n2', 500)
    expect(sim.host('n2').clock.now()).toBe(1500)
    // An 11 ms local timer on the 10 % fast clock fires after 10 virtual ms.
    let at = 0
    sim.host('n1').clock.setTimer(11, () => {
      at = sim.now
    })
    await sim.run({ until: 1100 })
    expect(at).toBeCloseTo(1010, 6)
  })
})

describe('checkers', () => {
  it('no-creation and no-duplication flag bad histories', () => {
    const sim = new Simulation({ seed: 1, nodes: 2, stack: floodStack() })
    sim.history.add({ time: 1, node: 'n1', incarnation: 0, kind: 'sent', group: 'g', id: 'n1:1' })
    sim.history.add({
      time: 2,
      node: 'n2',
      incarnation: 0,
      kind: 'delivered',
      group: 'g',
      id: 'n1:1',
      from: 'n1',
    })
    expect(sim.check([noCreation, noDuplication])).toEqual([])
    sim.history.add({
      time: 3,
      node: 'n2',
      incarnation: 0,
      kind: 'delivered',
      group: 'g',
      id: 'n1:1',
      from: 'n1',
    })
    sim.history.add({
      time: 4,
      node: 'n2',
      incarnation: 0,
      kind: 'delivered',
      group: 'g',
      id: 'n9:9',
      from: 'n1',
    })
    sim.history.add({
      time: 5,
      node: 'n2',
      incarnation: 0,
      kind: 'delivered',
      group: 'g',
      id: 'n1:1',
      from: 'n2',
    })
    const violations = sim.check([noCreation, noDuplication])
    expect(violations.map((v) => v.checker).sort()).toEqual([
      'no-creation',
      'no-creation',
      'no-duplication',
      'no-duplication',
    ])
    // A re-delivery by a new incarnation is not a duplicate.
    const fresh = new Simulation({ seed: 1, nodes: 2, stack: floodStack() })
    fresh.history.add({ time: 1, node: 'n1', incarnation: 0, kind: 'sent', group: 'g', id: 'a' })
    fresh.history.add({
      time: 2,
      node: 'n2',
      incarnation: 0,
      kind: 'delivered',
      group: 'g',
      id: 'a',
    })
    fresh.history.add({
      time: 3,
      node: 'n2',
      incarnation: 1,
      kind: 'delivered',
      group: 'g',
      id: 'a',
    })
    expect(fresh.check([noDuplication])).toEqual([])
  })

  it('no-creation compares content: a reused id that escaped twice, or content never sent, is flagged', () => {
    const sim = new Simulation({ seed: 1, nodes: 3, stack: floodStack() })
    const rec = (r: Omit<HistoryRecord, 'group'>) => sim.history.add({ group: 'g', ...r })
    // n1 sent n1:1 as A, crashed, and its next incarnation sent other content under n1:1.
    rec({ time: 1, node: 'n1', incarnation: 0, kind: 'sent', id: 'n1:1', digest: 'A' })
    rec({
      time: 1,
      node: 'n1',
      incarnation: 0,
      kind: 'delivered',
      id: 'n1:1',
      from: 'n1',
      digest: 'A',
    })
    rec({
      time: 2,
      node: 'n2',
      incarnation: 0,
      kind: 'delivered',
      id: 'n1:1',
      from: 'n1',
      digest: 'A',
    })
    rec({ time: 3, node: 'n1', incarnation: 0, kind: 'crash' })
    rec({ time: 4, node: 'n1', incarnation: 1, kind: 'sent', id: 'n1:1', digest: 'B' })
    rec({
      time: 5,
      node: 'n3',
      incarnation: 0,
      kind: 'delivered',
      id: 'n1:1',
      from: 'n1',
      digest: 'B',
    })
    // Content nobody sent under that id.
    rec({ time: 6, node: 'n3', incarnation: 0, kind: 'sent', id: 'n3:1', digest: 'C' })
    rec({
      time: 7,
      node: 'n2',
      incarnation: 0,
      kind: 'delivered',
      id: 'n3:1',
      from: 'n3',
      digest: 'X',
    })
    const messages = sim.check([noCreation]).map((v) => v.message)
    expect(messages).toEqual([
      'n1:1 in g stands for two contents: n2 delivered A, n3 delivered B (a reused id)',
      'n2 delivered n3:1 in g with content X that its sender never sent under that id',
    ])
  })

  it('no-creation allows a message that never left a crashed sender to be sent again under its id', () => {
    const sim = new Simulation({ seed: 1, nodes: 2, stack: floodStack() })
    const rec = (r: Omit<HistoryRecord, 'group'>) => sim.history.add({ group: 'g', ...r })
    rec({ time: 1, node: 'n1', incarnation: 0, kind: 'sent', id: 'n1:1', digest: 'A' })
    rec({
      time: 1,
      node: 'n1',
      incarnation: 0,
      kind: 'delivered',
      id: 'n1:1',
      from: 'n1',
      digest: 'A',
    })
    rec({ time: 2, node: 'n1', incarnation: 0, kind: 'crash' })
    rec({ time: 3, node: 'n1', incarnation: 1, kind: 'sent', id: 'n1:1', digest: 'B' })
    rec({
      time: 3,
      node: 'n1',
      incarnation: 1,
      kind: 'delivered',
      id: 'n1:1',
      from: 'n1',
      digest: 'B',
    })
    rec({
      time: 4,
      node: 'n2',
      incarnation: 0,
      kind: 'delivered',
      id: 'n1:1',
      from: 'n1',
      digest: 'B',
    })
    expect(sim.check([noCreation])).toEqual([])
  })

  it('a checker that throws is reported, not fatal', () => {
    const sim = new Simulation({ seed: 1, nodes: 2, stack: floodStack() })
    const violations = sim.check([
      {
        name: 'boom',
        check: () => {
          throw new Error('bad')
        },
      },
    ])
    expect(violations).toEqual([{ checker: 'boom', message: 'checker threw: Error: bad' }])
  })
})

describe('scheduling', () => {
  it('every() runs at each interval up to (not including) the end', async () => {
    const sim = new Simulation({ seed: 1, nodes: 1, stack: floodStack() })
    const times: number[] = []
    sim.every(10, 50, () => void times.push(sim.now))
    await sim.run({ until: 100 })
    expect(times).toEqual([10, 20, 30, 40])
    expect(sim.now).toBe(100)
  })

  it('events at the same instant run in scheduling order', async () => {
    const sim = new Simulation({ seed: 1, nodes: 1, stack: floodStack() })
    const order: number[] = []
    for (let i = 0; i < 20; i++) sim.at(5, () => void order.push(i))
    await sim.run()
    expect(order).toEqual([...Array(20).keys()])
  })

  it('an async event that rejects fails the scenario with its error', async () => {
    const result = await runScenario(
      {
        name: 'rejects',
        nodes: 1,
        durationMs: 50,
        stack: () => floodStack(),
        workload(sim) {
          sim.at(10, async () => {
            await sim.host('n1').storage.sync()
            throw new Error('boom after sync')
          })
        },
      },
      { seed: 1 },
    )
    expect(result.ok).toBe(false)
    expect(result.error).toBe('Error: boom after sync')
  })

  it('run() stops at maxEvents and at stopWhen', async () => {
    const sim = new Simulation({ seed: 1, nodes: 1, stack: floodStack() })
    let n = 0
    sim.every(1, 1000, () => void n++)
    expect(await sim.run({ maxEvents: 5 })).toBe(5)
    expect(n).toBe(5)
    await sim.run({ stopWhen: () => n >= 12 })
    expect(n).toBe(12)
    expect(sim.now).toBe(12)
  })

  it('rejects scheduling in the past', async () => {
    const sim = new Simulation({ seed: 1, nodes: 1, stack: floodStack() })
    await sim.run({ until: 10 })
    expect(() => sim.at(5, () => {})).toThrow(RangeError)
  })
})
