import { divider } from '@consul/divider'
import { failureDetection } from '@consul/failure-detection'
import { totalOrder } from '@consul/order-total'
import { psync } from '@consul/psync'
import { dist, Simulation } from '@consul/sim'
import {
  DecodeError,
  FAILURE_DETECTION,
  MEMBERSHIP,
  MEMBERSHIP_CHANNEL,
  ORDER,
  type OrderedCommand,
  type PrimaryState,
  PSYNC,
  stack,
  type ViewChange,
} from '@consul/xkernel'
import { describe, expect, it } from 'vitest'
import { primaryPartition, viewAgreement } from '../src/checkers.js'
import { decode, encode, type MembershipMessage } from '../src/codec.js'
import { membership } from '../src/index.js'

const text = (s: string) => new TextEncoder().encode(s)
const str = (c: OrderedCommand) => new TextDecoder().decode(c.command)

async function cluster(
  seed = 1,
  nodes = 3,
  pruning: { retainWaves: number; pruneEveryMs?: number } = { retainWaves: 64 },
) {
  const sim = new Simulation({
    seed,
    nodes,
    stack: stack()
      .use(psync({ logEveryMs: 1, ...pruning }))
      .use(divider())
      .use(failureDetection({ suspectAfterMs: 150 }))
      .use(membership())
      .use(totalOrder({ ackDelayMs: 1 })),
    network: { delay: dist.uniform(0.5, 2) },
  })
  await sim.start()
  await sim.openAll({ port: 'g' })
  const group = (n: string) => sim.host(n).group('g')!
  const changes = new Map<string, ViewChange[]>(sim.nodes.map((n) => [n, []]))
  const delivered = new Map<string, string[]>(sim.nodes.map((n) => [n, []]))
  for (const n of sim.nodes) {
    group(n)
      .get(MEMBERSHIP)
      .onViewChange((c) => void changes.get(n)!.push(c))
    group(n)
      .get(ORDER)
      .onDeliver((c) => void delivered.get(n)!.push(str(c)))
  }
  const states = new Map<string, PrimaryState[]>(sim.nodes.map((n) => [n, []]))
  for (const n of sim.nodes)
    group(n)
      .get(MEMBERSHIP)
      .onStateChange((s) => void states.get(n)!.push(s))
  const check = () => sim.check([viewAgreement, primaryPartition({ g: sim.nodes })])
  const submit = (n: string, s: string) => group(n).get(ORDER).submit(text(s), { level: 'safe' })
  return { sim, group, changes, delivered, states, check, submit }
}

describe('strong configuration', () => {
  it('a crashed member is excluded by an agreed view and ordering resumes', async () => {
    const { sim, group, changes, delivered, check } = await cluster()
    sim.at(100, () => void group('n1').get(ORDER).submit(text('before')))
    sim.at(300, () => sim.crash('n3'))
    sim.at(310, () => void group('n1').get(ORDER).submit(text('after')))
    await sim.run({ until: 1500 })
    for (const n of ['n1', 'n2']) {
      const [c, ...more] = changes.get(n)!
      expect(more).toEqual([])
      expect(c!.view).toEqual({ id: 1, configuration: 0, members: ['n1', 'n2'] })
      expect(c!.left).toEqual(['n3'])
      expect(c!.reason.kind).toBe('failure')
      expect(group(n).get(PSYNC).members()).toEqual(['n1', 'n2'])
      expect(delivered.get(n)).toEqual(['before', 'after'])
    }
    expect(check()).toEqual([])
  })
})

describe('adaptation through events', () => {
  it('a nacked suspicion closes the decision: a later crash is detected with the plain timeout (regression)', async () => {
    const { sim, group, changes } = await cluster(1)
    const reasons: { member: string; timeoutMs: number; adaptations: readonly string[] }[] = []
    group('n1')
      .get(FAILURE_DETECTION)
      .onSuspect((s) => void reasons.push({ member: s.member, ...s.reason }))
    // n3 is busy, so n2 and n3 have newer messages of it than n1's down: nacked.
    sim.every(1, 400, () => {
      group('n3')
        .get(ORDER)
        .submit(text('busy'))
        .catch(() => {})
    })
    sim.at(200, () => group('n1').get(MEMBERSHIP).suspect('n3'))
    sim.at(1000, () => {
      expect(group('n1').get(MEMBERSHIP).deciding()).toEqual([])
      sim.crash('n2')
    })
    await sim.run({ until: 2000 })
    expect(sim.host('n1').stats().membership!.nacked).toBeGreaterThan(0)
    expect(reasons).toEqual([
      expect.objectContaining({ member: 'n2', timeoutMs: 150, adaptations: [] }),
    ])
    const [c] = changes.get('n1')!
    expect(c!.left).toEqual(['n2'])
  })
})

describe('primary partition', () => {
  it('an isolated member is in the minority: its submits fail with NO_PRIMARY; after the heal it learns its exclusion', async () => {
    const { sim, group, changes, states, check, submit } = await cluster(3)
    const outcomes: string[] = []
    sim.at(200, () => sim.network.partition(['n1', 'n2'], ['n3']))
    // The second suspicion waits longer (a decision is open: Failure Detection's 'deciding').
    sim.at(700, () => {
      expect(group('n3').get(MEMBERSHIP).state()).toBe('minority')
      submit('n3', 'lonely').then(
        () => outcomes.push('resolved'),
        (e: { code?: string }) => outcomes.push(e.code ?? 'error'),
      )
      void submit('n1', 'majority')
    })
    sim.at(1000, () => sim.network.heal())
    await sim.run({ until: 2500 })
    expect(outcomes).toEqual(['NO_PRIMARY'])
    // Hearing the majority again it calls itself primary for the moment it takes to receive
    // the decision that excluded it (its submits then wait, and are rejected on learning it).
    expect(states.get('n3')![0]).toBe('minority')
    expect(states.get('n3')!.at(-1)).toBe('excluded')
    expect(group('n3').get(MEMBERSHIP).state()).toBe('excluded')
    const [c3] = changes.get('n3')!
    expect(c3!.reason.kind).toBe('excluded')
    expect(c3!.left).toEqual(['n3'])
    for (const n of ['n1', 'n2']) {
      expect(changes.get(n)!.map((c) => c.view)).toEqual([
        { id: 1, configuration: 0, members: ['n1', 'n2'] },
      ])
      expect(group(n).get(MEMBERSHIP).state()).toBe('primary')
    }
    // The minority side never decided anything on its own.
    expect(sim.host('n3').stats().membership!.ballots ?? 0).toBe(0)
    expect(check()).toEqual([])
  })

  it('a member that speaks but no longer hears the others (a one-way partition) is excluded as deaf, not waited for forever (regression: campaign seeds 63, 983, 5607)', async () => {
    const { sim, group, changes, check, submit } = await cluster(2)
    const outcome: string[] = []
    sim.at(200, () => {
      sim.network.block('n1', 'n3')
      sim.network.block('n2', 'n3')
    })
    sim.at(700, () => {
      submit('n1', 'majority').then(
        () => outcome.push('ordered'),
        (e: { code?: string }) => outcome.push(e.code ?? 'error'),
      )
    })
    sim.at(1200, () => sim.network.heal())
    await sim.run({ until: 2500 })
    expect(outcome).toEqual(['ordered'])
    for (const n of ['n1', 'n2']) {
      const [c] = changes.get(n)!
      expect(c!.left).toEqual(['n3'])
      // n3 was heard all along: it was suspected for never acknowledging.
      expect(c!.reason.suspicions.n3!.unacknowledgedForMs).toBeGreaterThan(150)
    }
    expect(group('n3').get(MEMBERSHIP).state()).toBe('excluded')
    expect(check()).toEqual([])
  })

  it('a member cut off while the primary pruned the decision still learns its exclusion: the primary tells it', async () => {
    const { sim, group } = await cluster(4, 3, { retainWaves: 2, pruneEveryMs: 10 })
    sim.at(100, () => sim.network.partition(['n1', 'n2'], ['n3']))
    // The majority orders on, so the waves of the decision are pruned long before the heal.
    sim.every(10, 1500, () => void group('n1').get(ORDER).submit(text('on'), { level: 'agreed' }))
    sim.at(1500, () => sim.network.heal())
    await sim.run({ until: 2500 })
    expect(group('n1').get(MEMBERSHIP).view().members).toEqual(['n1', 'n2'])
    expect(group('n3').get(MEMBERSHIP).state()).toBe('excluded')
    expect(sim.host('n3').stats().membership!.excludedByNotice).toBe(1)
    expect(sim.host('n1').stats().psync!.excludedNoticesSent).toBeGreaterThan(0)
    // It installed no view it could not learn.
    expect(group('n3').get(MEMBERSHIP).view().id).toBe(0)
  })

  it('a partition that heals before anyone is suspected changes nothing', async () => {
    const { sim, changes, check, delivered, submit } = await cluster(4)
    sim.at(200, () => sim.network.partition(['n1', 'n2'], ['n3']))
    sim.at(260, () => sim.network.heal())
    sim.at(300, () => void submit('n3', 'x'))
    await sim.run({ until: 1500 })
    for (const n of ['n1', 'n2', 'n3']) {
      expect(changes.get(n)).toEqual([])
      expect(delivered.get(n)).toEqual(['x'])
    }
    expect(check()).toEqual([])
  })
})

describe('restart', () => {
  it('a survivor that restarts replays the decision from its log and installs the same view', async () => {
    const { sim, group, changes, check, submit } = await cluster(5)
    sim.at(200, () => sim.crash('n3'))
    sim.at(800, () => sim.crash('n2'))
    sim.at(900, async () => {
      await sim.restart('n2')
    })
    sim.at(1300, () => void submit('n2', 'after restart'))
    await sim.run({ until: 2500 })
    expect(group('n2').get(MEMBERSHIP).view()).toEqual({
      id: 1,
      configuration: 0,
      members: ['n1', 'n2'],
    })
    expect(group('n2').get(PSYNC).members()).toEqual(['n1', 'n2'])
    expect(changes.get('n1')!.map((c) => c.view.id)).toEqual([1])
    expect(check()).toEqual([])
  })
})

describe('up: a restarted member announces itself', () => {
  it('a member restarted before anyone suspected it sends up; every other member acknowledges, no view changes', async () => {
    const { sim, group, changes, check, submit, delivered } = await cluster(7)
    sim.at(200, () => sim.crash('n2'))
    let view: unknown
    sim.at(240, async () => {
      await sim.restart('n2')
      group('n2')
        .get(MEMBERSHIP)
        .up()
        .then((v) => {
          view = v
        })
    })
    sim.at(600, () => void submit('n2', 'back'))
    await sim.run({ until: 1500 })
    expect(view).toEqual({ id: 0, configuration: 0, members: ['n1', 'n2', 'n3'] })
    expect(sim.host('n2').stats().membership!.upAcknowledged).toBe(1)
    expect(sim.host('n1').stats().membership!['sent.ackUp']).toBe(1)
    for (const n of sim.nodes) expect(changes.get(n)).toEqual([])
    expect(delivered.get('n1')).toContain('back')
    expect(check()).toEqual([])
  })

  it('up from a member the primary excluded rejects with EXCLUDED; a closed group rejects with GROUP_CLOSED', async () => {
    const { sim, group } = await cluster(2)
    sim.at(100, () => sim.network.partition(['n1', 'n2'], ['n3']))
    sim.at(900, () => sim.network.heal())
    await sim.run({ until: 2000 })
    expect(group('n3').get(MEMBERSHIP).state()).toBe('excluded')
    await expect(group('n3').get(MEMBERSHIP).up()).rejects.toMatchObject({ code: 'EXCLUDED' })
    const outcome = group('n1')
      .get(MEMBERSHIP)
      .up()
      .then(
        () => 'resolved',
        (e: { code?: string }) => e.code,
      )
    void sim.host('n1').group('g')!.close()
    await sim.run({ for: 100 })
    expect(await outcome).toBe('GROUP_CLOSED')
  })
})

describe('leave: a member goes gracefully', () => {
  it('a member that leaves is removed by an agreed view with reason leave, without any suspicion; what it sent before still counts; its later submits are refused', async () => {
    const { sim, group, changes, delivered, states, check, submit } = await cluster(4, 5)
    const acked: string[] = []
    for (let t = 20; t < 600; t += 10)
      for (const n of sim.nodes)
        sim.at(t, () => {
          const s = `${n}@${t}`
          submit(n, s).then(
            () => void acked.push(s),
            () => {},
          )
        })
    let left: ViewChange | undefined
    let refused: unknown
    sim.at(300, () => {
      void submit('n5', 'n5 before leaving').then(() => acked.push('n5 before leaving'))
      group('n5')
        .get(MEMBERSHIP)
        .leave()
        .then((c) => (left = c))
      expect(group('n5').get(MEMBERSHIP).state()).toBe('leaving')
      submit('n5', 'after leave()').catch((e: unknown) => (refused = e))
    })
    await sim.run({ until: 1_000 })
    expect(left).toBeDefined()
    expect(left!.left).toEqual(['n5'])
    expect(left!.reason).toMatchObject({ kind: 'leave', leaves: ['n5'], suspicions: {} })
    expect(group('n5').get(MEMBERSHIP).state()).toBe('excluded')
    expect(states.get('n5')).toEqual(['leaving', 'excluded'])
    expect((refused as { code?: string }).code).toBe('NO_PRIMARY')
    expect(String(refused)).toMatch(/leaving the group/)
    for (const n of ['n1', 'n2', 'n3', 'n4']) {
      const [c, ...more] = changes.get(n)!
      expect(more).toEqual([])
      expect(c!.view).toEqual({ id: 1, configuration: 0, members: ['n1', 'n2', 'n3', 'n4'] })
      expect(c!.reason).toMatchObject({ kind: 'leave', leaves: ['n5'], suspicions: {} })
      expect(c!.reason.cuts.n5).toBe(left!.reason.cuts.n5)
      // Nobody suspected anyone: a leave is no failure.
      expect(sim.host(n).stats()['failure-detection']?.suspicions ?? 0).toBe(0)
      expect(group(n).get(PSYNC).members()).toEqual(['n1', 'n2', 'n3', 'n4'])
      expect(delivered.get(n)).toEqual(delivered.get('n1'))
    }
    // Every acknowledged command is delivered at every member that stays, n5's from before too.
    for (const s of acked) expect(delivered.get('n1')).toContain(s)
    expect(acked).toContain('n5 before leaving')
    expect(check()).toEqual([])
  })

  it('leave() calls share one promise; a view of 2 cannot shrink by a leave (INVALID_ARGUMENT); an excluded member cannot leave (EXCLUDED)', async () => {
    const { sim, group } = await cluster(5, 3)
    const m = (n: string) => group(n).get(MEMBERSHIP)
    sim.at(10, () => {
      expect(m('n3').leave()).toBe(m('n3').leave())
    })
    await sim.run({ until: 600 })
    expect(m('n1').view().members).toEqual(['n1', 'n2'])
    await expect(m('n1').leave()).rejects.toThrow(/would not be a majority/)
    await expect(m('n3').leave()).rejects.toMatchObject({ code: 'EXCLUDED' })
  })

  it('a leave and a crash at once: both go, each with its reason', async () => {
    const { sim, group, changes, check } = await cluster(6, 5)
    sim.at(100, () => sim.crash('n4'))
    sim.at(110, () => void group('n5').get(MEMBERSHIP).leave())
    await sim.run({ until: 1_500 })
    const last = changes.get('n1')!.at(-1)!
    expect(last.view.members).toEqual(['n1', 'n2', 'n3'])
    const all = changes.get('n1')!
    expect(all.flatMap((c) => c.reason.leaves)).toEqual(['n5'])
    expect(all.flatMap((c) => c.left).sort()).toEqual(['n4', 'n5'])
    // The same decisions everywhere (each replica's own suspicions aside).
    const agreed = (n: string) =>
      changes.get(n)!.map((c) => [c.view, c.left, c.reason.kind, c.reason.leaves, c.reason.cuts])
    for (const n of ['n2', 'n3']) expect(agreed(n)).toEqual(agreed('n1'))
    expect(all.find((c) => c.left.includes('n4'))!.reason.kind).toBe('failure')
    expect(check()).toEqual([])
  })
})

describe('composition', () => {
  it('host.describe() shows the event edges: Membership deciding → Failure Detection, primary → the Order', async () => {
    const { sim } = await cluster()
    const d = sim.host('n1').describe()
    expect(d.eventEdges).toContainEqual({
      event: 'membership.deciding',
      from: 'membership',
      to: 'failure-detection',
    })
    expect(d.eventEdges).toContainEqual({
      event: 'membership.primary',
      from: 'membership',
      to: 'order-total',
    })
    expect(d.edges).toContainEqual({
      from: 'membership',
      to: 'failure-detection',
      capability: 'failure-detection',
    })
  })
})

describe('bad input', () => {
  const messages: MembershipMessage[] = [
    { kind: 'down', instance: 3, member: 2, deaf: false },
    { kind: 'down', instance: 3, member: 1, deaf: true },
    { kind: 'ackDown', instance: 0, member: 0 },
    { kind: 'nackDown', instance: 1, member: 4 },
    { kind: 'propose', instance: 2, round: 7, set: [1, 3] },
    {
      kind: 'promise',
      instance: 2,
      ballot: { round: 7, rank: 0 },
      holds: [
        [1, 99],
        [3, 0],
      ],
      accepted: undefined,
    },
    {
      kind: 'promise',
      instance: 2,
      ballot: { round: 8, rank: 4 },
      holds: [[1, 5]],
      accepted: { ballot: { round: 7, rank: 0 }, set: [1], value: { members: [1], cuts: [4] } },
    },
    { kind: 'accept', instance: 9, round: 1, set: [2], value: { members: [2], cuts: [123456789] } },
    { kind: 'accepted', instance: 9, ballot: { round: 1, rank: 3 } },
    { kind: 'up', instance: 4, member: 2 },
    { kind: 'ackUp', instance: 4, member: 2 },
    { kind: 'leave', instance: 4, member: 1 },
  ]

  it('every message round-trips through the codec', () => {
    for (const m of messages) expect(decode(encode(m), 5)).toEqual(m)
  })

  it('malformed payloads throw DecodeError: truncations, bad indices, repeats, trailing bytes, other versions', () => {
    const bad: Uint8Array[] = [
      new Uint8Array([]),
      new Uint8Array([MEMBERSHIP_CHANNEL.id, 1, 1]),
      new Uint8Array([MEMBERSHIP_CHANNEL.id, 2, 1, 0, 0]),
      new Uint8Array([MEMBERSHIP_CHANNEL.id, 1, 99, 0, 0]),
      encode({ kind: 'down', instance: 0, member: 7, deaf: false }),
      encode({ kind: 'propose', instance: 0, round: 1, set: [1, 1] }),
      new Uint8Array([...encode({ kind: 'down', instance: 0, member: 1, deaf: false }), 0]),
      new Uint8Array([MEMBERSHIP_CHANNEL.id, 1, 1, 0, 1, 2]),
    ]
    for (const m of messages) {
      const bytes = encode(m)
      for (let cut = 3; cut < bytes.length; cut++) bad.push(bytes.subarray(0, cut))
    }
    for (const b of bad) expect(() => decode(b, 5), String([...b])).toThrow(DecodeError)
  })

  it('a malformed membership message from a member is counted and dropped, the group goes on', async () => {
    const { sim, group, delivered, submit } = await cluster()
    sim.at(
      100,
      () =>
        void group('n2')
          .get(PSYNC)
          .send(new Uint8Array([MEMBERSHIP_CHANNEL.id, 1, 42, 0])),
    )
    sim.at(150, () => void submit('n1', 'fine'))
    await sim.run({ until: 600 })
    expect(sim.host('n1').stats().membership!.droppedMalformed).toBe(1)
    expect(delivered.get('n3')).toEqual(['fine'])
  })

  it('bad options and arguments throw INVALID_ARGUMENT', async () => {
    expect(() => membership({ retryAfterMs: -1 })).toThrow(/retryAfterMs must be a positive number/)
    expect(() => membership({ tickMs: Number.NaN })).toThrow(/tickMs/)
    expect(() => membership({ bogus: 1 } as never)).toThrow(/unknown membership option bogus/)
    expect(() => membership(null as never)).toThrow(/must be an object/)
    const { group } = await cluster()
    const m = group('n1').get(MEMBERSHIP)
    expect(() => m.suspect('n1')).toThrow(/cannot suspect itself/)
    expect(() => m.suspect('n9')).toThrow(/n9 is not a member of view 0/)
    expect(() => m.onViewChange(42 as never)).toThrow(/onViewChange takes a function/)
  })
})
