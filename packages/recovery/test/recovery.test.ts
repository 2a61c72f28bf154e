/**
 * Recovery in the simulator, over the whole strong stack: Psync, the Divider, Failure
 * Detection, Membership, total order, the Dispatcher with a key-value machine, Recovery.
 */

import { DispatchError, defineCommands, dispatcher, stateMachine } from '@consul/dispatcher'
import { divider } from '@consul/divider'
import { failureDetection } from '@consul/failure-detection'
import { membership } from '@consul/membership'
import { totalOrder } from '@consul/order-total'
import { psync } from '@consul/psync'
import { dist, Simulation } from '@consul/sim'
import {
  DISPATCHER,
  MEMBERSHIP,
  PSYNC,
  RECOVERY,
  type RecoveryState,
  type StableStorage,
  stack,
  XKernelError,
} from '@consul/xkernel'
import { describe, expect, it } from 'vitest'
import { crc32, decodeCheckpoint, encodeCheckpoint } from '../src/codec.js'
import { recovery } from '../src/index.js'
import { readRecord } from '../src/store.js'

type Kv = Map<string, number>

const kv = stateMachine({
  initial: (): Kv => new Map(),
  commands: defineCommands({
    add: (s: Kv, a: { key: string; n: number }) => {
      const v = (s.get(a.key) ?? 0) + a.n
      s.set(a.key, v)
      return v
    },
  }),
  snapshot: (s) => [...s].sort(([a], [b]) => (a < b ? -1 : 1)),
  restore: (x) => new Map(x as [string, number][]),
})

async function cluster(seed = 1, every = 4) {
  const sim = new Simulation({
    seed,
    nodes: 3,
    stack: stack()
      .use(psync({ logEveryMs: 1 }))
      .use(divider())
      .use(failureDetection({ suspectAfterMs: 300 }))
      .use(membership())
      .use(totalOrder({ ackDelayMs: 1 }))
      .use(dispatcher({ machine: kv }))
      .use(recovery({ checkpointEveryWaves: every, floorEveryMs: 20 })),
    network: { delay: dist.uniform(0.5, 2) },
  })
  await sim.start()
  await sim.openAll({ port: 'g' })
  const group = (n: string) => sim.host(n).group('g')!
  const client = (n: string) => kv.client(group(n).get(DISPATCHER))
  const rec = (n: string) => group(n).get(RECOVERY)
  const acked: { key: string; n: number }[] = []
  /** Keeps every replica submitting (errors counted) until `until`. */
  const load = (until: number, every = 3) => {
    for (let t = 5; t < until; t += every)
      for (const n of sim.nodes)
        sim.at(t, () => {
          if (!sim.isUp(n)) return
          const args = { key: `k${((t * 7) % 5) | 0}`, n: 1 }
          client(n)
            .submit('add', args)
            .then(
              () => acked.push(args),
              () => {},
            )
        })
  }
  return { sim, group, client, rec, load, acked }
}

const total = (s: Kv) => [...s.values()].reduce((a, b) => a + b, 0)

describe('the coordinated checkpoint', () => {
  it('is taken at wave boundaries in one batch with every session that has state; the prune floor rises and the log stays bounded', async () => {
    const { sim, rec, group, load } = await cluster(1)
    load(1_500)
    await sim.run({ until: 1_600 })
    for (const n of sim.nodes) {
      const last = rec(n).lastCheckpoint()
      expect(last, n).toBeDefined()
      expect(last!.protocols).toEqual(['membership', 'order-total', 'dispatcher'])
      expect(rec(n).pruneFloor()).toBeGreaterThan(0)
      const st = sim.host(n).stats()
      expect(st.recovery!.checkpoints).toBeGreaterThan(10)
      // Psync pruned below the floor: far fewer messages live than were sent.
      expect(st.psync!.liveMessages!).toBeLessThan(st.psync!.delivered! / 2)
      expect(group(n).get(PSYNC).waveFloor()).toBeGreaterThan(0)
    }
    // One manifest per checkpoint kept (2), each with its parts, plus the head.
    const keys = [...sim.disk('n1').scan({ prefix: 'recovery/g/' })].map((e) => e.key)
    const manifests = keys.filter((k) => /^recovery\/g\/checkpoint\/\d{16}$/.test(k))
    expect(manifests).toHaveLength(2)
    for (const m of manifests) expect(keys).toContain(`${m}/00000000`)
    expect(keys.filter((k) => !k.startsWith('recovery/g/checkpoint/'))).toEqual(['recovery/g/head'])
  })

  it('on demand: resolves once durable; the record decodes to the same states', async () => {
    const { sim, rec, group } = await cluster(2, 1_000_000)
    await sim.run({ until: 50 })
    let info: Awaited<ReturnType<ReturnType<typeof rec>['checkpoint']>> | undefined
    sim.at(
      60,
      () =>
        void rec('n1')
          .checkpoint()
          .then((i) => (info = i)),
    )
    await sim.run({ until: 300 })
    expect(info).toBeDefined()
    expect(info!.generation).toBe(1)
    const disk = sim.disk('n1')
    const scoped = {
      get: (key: string) => disk.get(`recovery/g/${key}`),
    } as unknown as StableStorage
    const { record } = readRecord(scoped, 1, crc32)!
    expect(record.wave).toBe(info!.wave)
    expect(record.states.map((s) => s.protocol)).toEqual(info!.protocols)
    expect(
      sim
        .host('n1')
        .describe()
        .sessions.filter((s) => s.checkpoint)
        .map((s) => s.protocol),
    ).toEqual(['membership', 'order-total', 'dispatcher'])
    expect(group('n1').restoring).toBe(false)
  })
})

describe('restart', () => {
  it('restores the newest checkpoint, replays passively (new commands refused: RECOVERING), rejoins with up, and ends in the same state; nothing acknowledged is lost', async () => {
    const { sim, rec, client, load, acked } = await cluster(3)
    load(1_400)
    const states: RecoveryState[] = []
    let refused: unknown
    sim.at(600, () => sim.crash('n3'))
    sim.at(650, async () => {
      await sim.restart('n3')
      rec('n3').onStateChange((s) => void states.push(s))
      expect(rec('n3').state()).toBe('recovering')
      client('n3')
        .submit('add', { key: 'x', n: 1 })
        .catch((e: unknown) => (refused = e))
    })
    await sim.run({ until: 2_500 })
    const s1 = [...client('n1').state()]
    for (const n of ['n2', 'n3']) expect([...client(n).state()], n).toEqual(s1)
    expect(DispatchError.isInstance(refused) && refused.code).toBe('RECOVERING')
    expect(states).toEqual(['active'])
    expect(rec('n3').restoredFrom()).toMatchObject({ skipped: 0 })
    expect(rec('n3').restoredFrom()!.generation).toBeGreaterThan(0)
    const described = sim
      .host('n3')
      .describe()
      .sessions.filter((s) => s.restored)
    expect(described.map((s) => s.protocol)).toEqual(['membership', 'order-total', 'dispatcher'])
    // Every acknowledged command is in the state (each adds 1).
    expect(total(client('n1').state())).toBeGreaterThanOrEqual(acked.length)
    expect(sim.host('n3').stats().dispatcher!.refusedRecovering).toBeGreaterThanOrEqual(1)
    // After the rejoin, n3 submits again.
    let after: unknown
    sim.at(
      2_600,
      () =>
        void client('n3')
          .submit('add', { key: 'z', n: 5 })
          .then((v) => (after = v)),
    )
    await sim.run({ until: 3_000 })
    expect(after).toBe(5)
  })

  it("a survivor restarted after an exclusion whose deciding messages were pruned gets the view and the cut back from Membership's checkpoint", async () => {
    const { sim, rec, client, load, group } = await cluster(6)
    load(1_800)
    sim.at(300, () => sim.crash('n1'))
    sim.at(1_300, () => sim.crash('n2'))
    let floorAtRestart = -1
    sim.at(1_330, async () => {
      await sim.restart('n2')
      floorAtRestart = group('n2').get(PSYNC).waveFloor()
    })
    await sim.run({ until: 2_600 })
    // n2's log was pruned before the crash (view 1 was decided at ≈ 700 ms).
    expect(floorAtRestart).toBeGreaterThan(0)
    const m = (n: string) => group(n).get(MEMBERSHIP)
    expect(m('n3').view()).toEqual({ id: 1, configuration: 0, members: ['n2', 'n3'] })
    expect(m('n2').view()).toEqual({ id: 1, configuration: 0, members: ['n2', 'n3'] })
    // The view came from the checkpoint, not from replaying the decision.
    expect(sim.host('n2').stats().membership!.restoredFromCheckpoint).toBe(1)
    expect(sim.host('n2').stats().membership!.views ?? 0).toBe(0)
    expect(group('n2').get(PSYNC).members()).toEqual(['n2', 'n3'])
    expect(rec('n2').state()).toBe('active')
    expect([...client('n2').state()]).toEqual([...client('n3').state()])
  })

  it('an unreadable newest checkpoint falls back to the one before: the same state still', async () => {
    const { sim, rec, client, load } = await cluster(4)
    load(1_200)
    sim.at(700, () => sim.crash('n2'))
    sim.at(720, async () => {
      const disk = sim.disk('n2')
      const newest = [...disk.scan({ prefix: 'recovery/g/checkpoint/', reverse: true })][0]!
      const broken = newest.value.slice()
      broken[30] = broken[30]! ^ 0xff
      disk.put(newest.key, broken)
      await sim.restart('n2')
    })
    await sim.run({ until: 2_500 })
    expect(rec('n2').restoredFrom()).toMatchObject({ skipped: 1 })
    expect(rec('n2').state()).toBe('active')
    expect(sim.host('n2').stats().recovery!.checkpointsUnreadable).toBe(1)
    expect([...client('n2').state()]).toEqual([...client('n1').state()])
  })

  it('peers treat a restarting member as recovering until it speaks again (Failure Detection lengthens its timeouts meanwhile)', async () => {
    const { sim, load } = await cluster(5)
    load(900)
    const seen: string[] = []
    sim.host('n1').events.on('recovery.started', (e) => void seen.push(`started ${e.member}`))
    sim.host('n1').events.on('recovery.finished', (e) => void seen.push(`finished ${e.member}`))
    sim.at(400, () => sim.crash('n3'))
    sim.at(430, async () => {
      await sim.restart('n3')
    })
    await sim.run({ until: 1_500 })
    expect(seen).toEqual(['started n3', 'finished n3'])
    const edges = sim.host('n1').describe().eventEdges
    expect(edges).toContainEqual({
      event: 'recovery.started',
      from: 'recovery',
      to: 'failure-detection',
    })
    expect(edges).toContainEqual({ event: 'recovery.started', from: 'recovery', to: 'dispatcher' })
  })
})

describe('bad input', () => {
  it('options are checked, naming the option', () => {
    expect(() => recovery({ checkpointEveryWaves: 0 })).toThrow(/checkpointEveryWaves/)
    expect(() => recovery({ keepCheckpoints: 1 })).toThrow(/keepCheckpoints/)
    expect(() => recovery({ floorEveryMs: -1 })).toThrow(/floorEveryMs/)
    expect(() => recovery({ nope: 1 } as never)).toThrow(/unknown recovery option nope/)
    expect(() => recovery(null as never)).toThrow(XKernelError)
  })

  it('a checkpoint record round-trips; a flipped bit, a cut or foreign bytes are refused', () => {
    const record = {
      generation: 3,
      wave: 41,
      states: [
        { protocol: 'order-total', state: new Uint8Array([1, 2, 3]) },
        { protocol: 'dispatcher', state: new Uint8Array(0) },
      ],
    }
    const bytes = encodeCheckpoint(record)
    expect(decodeCheckpoint(bytes)).toEqual(record)
    for (let i = 0; i < bytes.length; i++) {
      const broken = bytes.slice()
      broken[i] = broken[i]! ^ 0x01
      expect(() => decodeCheckpoint(broken)).toThrow(/not a checkpoint record/)
    }
    expect(() => decodeCheckpoint(bytes.subarray(0, bytes.length - 1))).toThrow(/checkpoint/)
    expect(() => decodeCheckpoint(new Uint8Array(40))).toThrow(/magic/)
  })
})
