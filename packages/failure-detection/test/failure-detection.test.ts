import { divider } from '@consul/divider'
import { totalOrder } from '@consul/order-total'
import { psync } from '@consul/psync'
import { dist, Simulation } from '@consul/sim'
import {
  FAILURE_DETECTION,
  FAILURE_DETECTION_CHANNEL,
  ORDER,
  type OrderedCommand,
  PSYNC,
  type Suspicion,
  stack,
} from '@consul/xkernel'
import { describe, expect, it } from 'vitest'
import {
  decodeAlive,
  encodeAlive,
  type FailureDetectionOptions,
  failureDetection,
  LocalHealth,
} from '../src/index.js'

const text = (s: string) => new TextEncoder().encode(s)
const str = (c: OrderedCommand) => new TextDecoder().decode(c.command)

async function cluster(
  options: FailureDetectionOptions = {},
  seed = 1,
  nodes = 3,
  network: { loss?: number } = {},
) {
  const sim = new Simulation({
    seed,
    nodes,
    stack: stack()
      .use(psync({ logEveryMs: 1, retainWaves: 64 }))
      .use(divider())
      .use(failureDetection(options))
      .use(totalOrder({ ackDelayMs: 1 })),
    network: { delay: dist.uniform(0.5, 2), ...network },
  })
  await sim.start()
  await sim.openAll({ port: 'g' })
  const group = (n: string) => sim.host(n).group('g')!
  const fd = (n: string) => group(n).get(FAILURE_DETECTION)
  const suspicions = new Map<string, Suspicion[]>(sim.nodes.map((n) => [n, []]))
  const delivered = new Map<string, string[]>(sim.nodes.map((n) => [n, []]))
  for (const n of sim.nodes) {
    fd(n).onSuspect((s) => void suspicions.get(n)!.push(s))
    group(n)
      .get(ORDER)
      .onDeliver((c) => void delivered.get(n)!.push(str(c)))
  }
  return { sim, group, fd, suspicions, delivered }
}

describe('weak configuration: suspicion masks out locally', () => {
  it('a crashed member is suspected within the timeout, with its reason, and ordering resumes without it', async () => {
    const { sim, group, suspicions, delivered } = await cluster({ suspectAfterMs: 150 })
    sim.at(100, () => void group('n1').get(ORDER).submit(text('before')))
    sim.at(300, () => sim.crash('n3'))
    sim.at(310, () => void group('n1').get(ORDER).submit(text('after')))
    await sim.run({ until: 1500 })
    for (const n of ['n1', 'n2']) {
      const [s, ...more] = suspicions.get(n)!
      expect(more).toEqual([])
      expect(s!.member).toBe('n3')
      // Detected within the timeout plus a tick and the alive period, never before it.
      expect(s!.at - 300).toBeGreaterThanOrEqual(150)
      expect(s!.at - 300).toBeLessThan(150 + 30 + 40 + 10)
      expect(s!.reason.silentForMs).toBeGreaterThan(s!.reason.timeoutMs)
      expect(s!.reason.timeoutMs).toBe(150)
      expect(s!.reason.lastSeq).toBeGreaterThan(0)
      expect(s!.reason.adaptations).toEqual([])
      expect(group(n).get(PSYNC).members()).toEqual(['n1', 'n2'])
      expect(delivered.get(n)).toEqual(['before', 'after'])
    }
    const traced = sim.history.declared('failure-detection.suspected', 'n1')
    expect(traced.map((r) => r.data.member)).toEqual(['n3'])
  })

  it('a member never heard from since the open gets the startup grace, then is suspected', async () => {
    const { sim, suspicions } = await cluster({ suspectAfterMs: 150, startupGraceMs: 1_000 })
    sim.network.block('n3', 'n1')
    await sim.run({ until: 900 })
    expect(suspicions.get('n1')).toEqual([])
    await sim.run({ until: 1_300 })
    const [s] = suspicions.get('n1')!
    expect(s!.member).toBe('n3')
    expect(s!.reason.adaptations).toContain('starting')
    expect(s!.reason.timeoutMs).toBe(1_000)
  })

  it('an idle group stays quiet but alive: alive messages, no suspicion', async () => {
    const { sim, suspicions } = await cluster()
    await sim.run({ until: 5000 })
    for (const n of sim.nodes) expect(suspicions.get(n)).toEqual([])
    const stats = sim.host('n1').stats()['failure-detection']!
    expect(stats.aliveSent).toBeGreaterThan(5000 / 40 / 2)
    expect(stats.aliveSent).toBeLessThan(5000 / 40 + 5)
  })

  it('a paused member is suspected, then masked back in once heard from again', async () => {
    const { sim, group, fd, suspicions } = await cluster()
    const alive: string[] = []
    fd('n1').onAlive((m) => void alive.push(m))
    sim.at(200, () => sim.pause('n3', 400))
    await sim.run({ until: 500 })
    expect(suspicions.get('n1')!.map((s) => s.member)).toEqual(['n3'])
    expect(group('n1').get(PSYNC).members()).toEqual(['n1', 'n2'])
    expect(fd('n1').suspected()).toEqual(['n3'])
    await sim.run({ until: 1200 })
    expect(alive).toEqual(['n3'])
    expect(fd('n1').suspected()).toEqual([])
    expect(group('n1').get(PSYNC).members()).toEqual(['n1', 'n2', 'n3'])
    // n3's own timers ran late by the whole pause: it accused nobody meanwhile.
    expect(suspicions.get('n3')).toEqual([])
    expect(sim.host('n3').stats()['failure-detection']!.ticksStalled).toBeGreaterThan(0)
  })

  it('a replica whose own loop stalls does not accuse the healthy ones (local health)', async () => {
    const { sim, suspicions } = await cluster({ suspectAfterMs: 150 })
    // n1 stalls three times, each longer than the timeout.
    for (const at of [300, 1200, 2100]) sim.at(at, () => sim.pause('n1', 450))
    await sim.run({ until: 4000 })
    expect(suspicions.get('n1')).toEqual([])
    const stats = sim.host('n1').stats()['failure-detection']!
    expect(stats.worstTickLateMs).toBeGreaterThanOrEqual(400)
  })

  it('lengthens the timeout while Psync retransmits over a lossy link to a member still heard from, not to a silent one', async () => {
    const { sim, fd } = await cluster({ suspectAfterMs: 150 })
    await sim.run({ until: 100 })
    const retransmitting = () =>
      sim.host('n1').events.emit('psync.retransmitting', {
        group: 'g',
        peer: 'n2',
        direction: 'to',
        count: 3,
      })
    retransmitting()
    // Not heard from since: no evidence of a live member behind the retransmission.
    expect(fd('n1').timeoutOf('n2')).toEqual({ timeoutMs: 150, adaptations: [] })
    // n2 is heard from after it (alive messages every 40 ms): a lossy link, not a dead member.
    await sim.run({ until: 160 })
    expect(fd('n1').timeoutOf('n2')).toEqual({ timeoutMs: 300, adaptations: ['retransmitting'] })
    expect(fd('n1').suspicionLevel('n2')).toBeLessThan(1 / 3)
    // A retransmission after which n2 stays silent ends the extension.
    sim.network.block('n2', 'n1')
    retransmitting()
    expect(fd('n1').timeoutOf('n2').timeoutMs).toBe(150)
    expect(fd('n1').suspicionLevel('n1')).toBe(0)
    expect(() => fd('n1').suspicionLevel('zz')).toThrow(/zz is not another member/)
  })

  it("admits divergence after a false suspicion: the suspecting replica's view and sequence differ (the weak contract)", async () => {
    const { sim, group, suspicions, delivered } = await cluster({ suspectAfterMs: 150 })
    // n1 stops hearing n3 (one way); n2 still does. n1's suspicion is false.
    sim.at(100, () => sim.network.block('n3', 'n1'))
    for (let i = 0; i < 5; i++)
      sim.at(
        400 + i * 50,
        () =>
          void group('n3')
            .get(ORDER)
            .submit(text(`n3-${i}`), { level: 'agreed' }),
      )
    await sim.run({ until: 1500 })
    expect(suspicions.get('n1')!.map((s) => s.member)).toEqual(['n3'])
    expect(suspicions.get('n2')).toEqual([])
    // Views differ…
    expect(group('n1').get(PSYNC).members()).toEqual(['n1', 'n2'])
    expect(group('n2').get(PSYNC).members()).toEqual(['n1', 'n2', 'n3'])
    // …and so do the sequences: n2 (and n3) deliver n3's commands, n1 never does.
    expect(delivered.get('n1')!.filter((c) => c.startsWith('n3'))).toEqual([])
    expect(delivered.get('n2')!.filter((c) => c.startsWith('n3')).length).toBeGreaterThan(0)
  })
})

describe('the weak contract over many seeds', () => {
  it('with loss and a crash at a random time: every survivor suspects the crashed member in time, and survivors that kept the same view deliver the same sequence (16 seeds)', async () => {
    let compared = 0
    for (let seed = 1; seed <= 16; seed++) {
      const { sim, group, suspicions, delivered } = await cluster({}, seed, 3, { loss: 0.1 })
      const victim = sim.nodes[seed % 3]!
      const crashAt = 300 + ((seed * 37) % 400)
      for (let t = 20; t < 2200; t += 20) {
        for (const n of sim.nodes) {
          sim.at(t, () => {
            if (sim.isUp(n))
              void group(n)
                .get(ORDER)
                .submit(text(`${n}@${t}`), { level: 'agreed' })
                .catch(() => {})
          })
        }
      }
      sim.at(crashAt, () => sim.crash(victim))
      await sim.run({ until: 3000 })
      const survivors = sim.nodes.filter((n) => n !== victim)
      let sameViews = true
      for (const n of survivors) {
        const mine = suspicions.get(n)!
        const ofVictim = mine.filter((s) => s.member === victim && s.at >= crashAt)
        expect(ofVictim.length, `seed ${seed}: ${n} suspects ${victim}`).toBeGreaterThanOrEqual(1)
        // Within the longest timeout (a lossy link doubles it), a tick and the alive period.
        expect(ofVictim[0]!.at - crashAt, `seed ${seed}`).toBeLessThan(2 * 150 + 30 + 40 + 10)
        if (mine.some((s) => s.member !== victim || s.at < crashAt)) sameViews = false
      }
      if (sameViews) {
        const [x, y] = survivors.map((n) => delivered.get(n)!)
        expect(x!.length, `seed ${seed}`).toBeGreaterThan(100)
        expect(x, `seed ${seed}: same view, same sequence`).toEqual(y)
        compared++
      }
    }
    // The comparison must actually run: false suspicions at 10 % loss are rare.
    expect(compared).toBeGreaterThanOrEqual(12)
  })
})

describe('composition', () => {
  it('host.describe() shows the event edges: Psync retransmitting → Failure Detection', async () => {
    const { sim } = await cluster()
    const d = sim.host('n1').describe()
    expect(d.eventEdges).toContainEqual({
      event: 'psync.retransmitting',
      from: 'psync',
      to: 'failure-detection',
    })
    expect(d.edges).toContainEqual({
      from: 'failure-detection',
      to: 'divider',
      capability: 'divider',
    })
    expect(d.edges).toContainEqual({ from: 'failure-detection', to: 'psync', capability: 'psync' })
  })
})

describe('bad input', () => {
  it('refuses bad options with a clear error', () => {
    expect(() => failureDetection({ suspectAfterMs: 0 })).toThrow(
      /suspectAfterMs must be a finite number >= 1/,
    )
    expect(() => failureDetection({ suspectAfterMs: 100, aliveEveryMs: 100 })).toThrow(
      /aliveEveryMs \(100\) must be below suspectAfterMs/,
    )
    expect(() => failureDetection({ retransmitFactor: 0.5 })).toThrow(/retransmitFactor/)
    expect(() => failureDetection(null as never)).toThrow(/options object/)
  })

  it('counts a malformed alive message and keeps going', async () => {
    const { sim, group } = await cluster()
    sim.at(
      50,
      () =>
        void group('n2')
          .get(PSYNC)
          .send(Uint8Array.of(FAILURE_DETECTION_CHANNEL.id, 9, 9)),
    )
    await sim.run({ until: 300 })
    expect(sim.host('n1').stats()['failure-detection']!.droppedMalformed).toBe(1)
  })

  it('alive messages carry the checkpoint position', async () => {
    const { sim, fd } = await cluster()
    fd('n2').setCheckpointPosition(42)
    expect(() => fd('n2').setCheckpointPosition(-1)).toThrow(/checkpoint position/)
    await sim.run({ until: 300 })
    expect(fd('n1').checkpointPositions()).toMatchObject({ n2: 42, n3: 0 })
    expect(decodeAlive(encodeAlive(300)).checkpoint).toBe(300)
    expect(() => decodeAlive(Uint8Array.of(FAILURE_DETECTION_CHANNEL.id, 1, 0, 0))).toThrow(
      /trailing/,
    )
  })
})

describe('LocalHealth', () => {
  it('keeps the worst lateness within its window and calls a tick later than a period stalled', () => {
    const h = new LocalHealth(1000, 30)
    expect(h.tick(100, 100)).toBe(0)
    expect(h.tick(130, 170)).toBe(40)
    expect(h.lag()).toBe(40)
    expect(h.stalled(40)).toBe(true)
    expect(h.stalled(20)).toBe(false)
    h.tick(200, 210)
    expect(h.lag()).toBe(40)
    h.tick(1300, 1300)
    expect(h.lag()).toBe(0)
  })
})
