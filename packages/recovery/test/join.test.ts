/**
 * Joins in the simulator, over the whole strong stack: a brand-new member comes into a loaded
 * group (the group moves into configuration 1 at one wave, the newcomer fetches the state and
 * ends equal), and an excluded member comes back by itself. Every `'safe'` acknowledgement is
 * checked against the final state: each acknowledged increment is applied exactly once.
 */

import { crc32 as zlibCrc32 } from 'node:zlib'
import { dispatcher } from '@consul/dispatcher'
import { divider } from '@consul/divider'
import { failureDetection } from '@consul/failure-detection'
import { membership } from '@consul/membership'
import { semanticOrder } from '@consul/order-semantic'
import { totalOrder } from '@consul/order-total'
import { psync } from '@consul/psync'
import { recoverReady } from '@consul/restart'
import { dist, Simulation } from '@consul/sim'
import {
  DISPATCHER,
  type Group,
  MEMBERSHIP,
  type MembershipControl,
  type OpenHooks,
  ORDER,
  RECOVERY,
  stack,
  type ViewChange,
} from '@consul/xkernel'
import { describe, expect, it } from 'vitest'
import { joinGroup, recovery } from '../src/index.js'
import { type Kv, kv } from './fixtures/kv.js'

const FIRST = ['n1', 'n2', 'n3']

const strong = (
  order: 'total' | 'semantic',
  bytesPerSecond = 0,
  admit?: (joiner: string) => boolean,
) =>
  stack()
    .use(psync({ logEveryMs: 1 }))
    .use(divider())
    .use(failureDetection({ suspectAfterMs: 400 }))
    .use(membership())
    .use(
      order === 'total'
        ? totalOrder({ ackDelayMs: 1 })
        : semanticOrder({ ackDelayMs: 1, classOf: () => 0 }),
    )
    .use(dispatcher({ machine: kv }))
    .use(
      recovery({
        checkpointEveryWaves: 16,
        floorEveryMs: 20,
        partBytes: 1_024,
        transferRetryMs: 60,
        transferDonorTimeoutMs: 300,
        transferBytesPerSecond: bytesPerSecond,
        ...(admit === undefined ? {} : { admit }),
        crc32: zlibCrc32,
      }),
    )

async function cluster(
  seed: number,
  order: 'total' | 'semantic' = 'total',
  bytesPerSecond = 0,
  admit?: (joiner: string) => boolean,
) {
  const nodes = [...FIRST, 'n4']
  /** Nodes whose program runs joinGroup at start (the newcomer, and a member whose disk was wiped). */
  const joiners = new Set(['n4'])
  const sim = new Simulation({
    seed,
    nodes,
    stack: strong(order, bytesPerSecond, admit),
    network: { delay: dist.uniform(0.5, 2), loss: 0.02 },
    // What each replica's program does at start: the first three recover their group; the
    // newcomer runs joinGroup again (it recovers the group if its record survived, else asks).
    onRestart: async (host) => {
      if (joiners.has(host.self))
        void joinGroup(host, {
          port: 'g',
          contacts: nodes.filter((n) => n !== host.self),
        }).catch(() => {})
      else void recoverReady(host, [{ port: 'g', members: FIRST }]).catch(() => {})
    },
  })
  await sim.start()
  /** Every view change each member reports, across configurations: the open hooks run again in
   * each new one, so the handler is attached before its first view is reported. */
  const views = new Map<string, ViewChange[]>(nodes.map((n) => [n, []]))
  const hooks = (n: string): OpenHooks<never> => ({
    beforeStart: (g) => {
      ;(g as unknown as Group<{ membership: MembershipControl }>)
        .get(MEMBERSHIP)
        .onViewChange((change) => views.get(n)!.push(change))
    },
  })
  for (const n of FIRST) await sim.host(n).open({ port: 'g', members: FIRST }, hooks(n) as never)
  const group = (n: string) => sim.host(n).group('g')
  const client = (n: string) => kv.client(group(n)!.get(DISPATCHER))
  const recState = (n: string) => group(n)?.get(RECOVERY).state()
  /** Acknowledged (`'safe'`) increments per key, and every key submitted. */
  const acked = new Map<string, number>()
  const submitted = new Map<string, number>()
  const load = (from: number, until: number, every = 3) => {
    let k = 0
    for (let t = from; t < until; t += every)
      for (const n of nodes)
        sim.at(t, () => {
          if (!sim.isUp(n) || recState(n) !== 'active') return
          const key = `k${k++ % 500}`
          submitted.set(key, (submitted.get(key) ?? 0) + 1)
          client(n)
            .submit('add', { key, n: 1 })
            .then(
              () => acked.set(key, (acked.get(key) ?? 0) + 1),
              () => {},
            )
        })
  }
  /** Runs until `cond` holds or the virtual `limit` (or, when given, a wall-clock budget). */
  const until = async (cond: () => boolean, limit: number, wallMs = Number.POSITIVE_INFINITY) => {
    const wallLimit = Date.now() + wallMs
    while (!cond() && sim.now < limit && Date.now() < wallLimit)
      await sim.run({ until: sim.now + 5 })
    return cond()
  }
  /** Every acknowledged increment applied exactly once (never more than submitted). */
  const checkDurability = (state: Kv) => {
    for (const [key, n] of acked) expect(state[key] ?? 0).toBeGreaterThanOrEqual(n)
    for (const [key, n] of Object.entries(state))
      expect(n).toBeLessThanOrEqual(submitted.get(key) ?? 0)
  }
  /**
   * Crashes `n`, wipes its disk (every key, synced: a lost or replaced disk) and starts it
   * again `downMs` later as a joiner (`joinGroup`, as the directory's `--join` does).
   */
  const wipe = async (n: string, downMs: number) => {
    sim.crash(n)
    const disk = sim.disk(n)
    disk.reopen()
    disk.batch([...disk.scan()].map(({ key }) => ({ type: 'del' as const, key })))
    const synced = disk.sync()
    await sim.run({ until: sim.now + downMs })
    await synced
    expect(disk.size).toBe(0)
    joiners.add(n)
    await sim.restart(n)
  }
  return {
    sim,
    group,
    client,
    recState,
    load,
    until,
    acked,
    checkDurability,
    views,
    hooks,
    wipe,
  }
}

describe('joins', () => {
  for (const order of ['total', 'semantic'] as const)
    it(`a brand-new member joins a loaded group (${order} order): all move into configuration 1, the newcomer fetches the state, and all end equal with every acknowledged command applied once`, async () => {
      const c = await cluster(21, order)
      c.load(5, 2_000)
      await c.sim.run({ until: 400 })
      let joined: Group<never> | undefined
      let failed: unknown
      joinGroup(c.sim.host('n4'), { port: 'g', contacts: ['n2'] }, c.hooks('n4') as never).then(
        (g) => {
          joined = g as never
        },
        (e) => {
          failed = e
        },
      )
      expect(await c.until(() => joined !== undefined || failed !== undefined, 5_000)).toBe(true)
      expect(failed).toBeUndefined()
      await c.sim.run({ until: 3_000 })
      if (process.env.JOIN_DEBUG)
        for (const n of [...FIRST, 'n4'])
          console.log(
            n,
            c.recState(n),
            c.group(n)?.configuration,
            JSON.stringify(c.sim.host(n).stats().recovery),
            c.group(n)?.get(MEMBERSHIP).view(),
          )
      for (const n of [...FIRST, 'n4']) {
        const g = c.group(n)!
        expect(g.configuration).toBe(1)
        expect(g.members).toEqual(['n1', 'n2', 'n3', 'n4'])
        expect(c.recState(n)).toBe('active')
      }
      const st = c.sim.host('n4').stats().recovery!
      expect(st.transfersCompleted).toBe(1)
      const s1 = c.client('n1').state() as Kv
      expect(Object.keys(s1).length).toBeGreaterThan(100)
      for (const n of ['n2', 'n3', 'n4']) expect(c.client(n).state()).toEqual(s1)
      c.checkDurability(s1)
      // The newcomer applied commands itself after it joined (the load ran on).
      expect(c.sim.host('n4').stats().dispatcher?.applied ?? 0).toBeGreaterThan(0)
      // Each member that moved carried its state (nobody needed a transfer but the newcomer).
      for (const n of FIRST) expect(c.sim.host(n).stats().recovery?.joinCarried).toBe(1)
      // Each reported the join as a view change: view 0 of configuration 1, n4 joined.
      for (const n of FIRST) {
        const join = c.views.get(n)!.find((v) => v.reason.kind === 'join')
        expect(join).toMatchObject({
          view: { id: 0, configuration: 1, members: ['n1', 'n2', 'n3', 'n4'] },
          joined: ['n4'],
          left: [],
        })
      }
    })

  // A member whose disk was wiped, started again as a joiner before the others excluded it:
  // it is still in their view, but its messages in this conversation are gone with its disk,
  // so it must not open the configuration again with a fresh chain (it would reuse its own
  // message ids; in configuration 0, with no checkpoint to fetch, it would even be active
  // at once with an empty state). It is excluded and joins as a new incarnation.
  for (const [title, seed, moveFirst] of [
    ['in configuration 0', 31, false],
    ['after a join moved the group into configuration 1', 32, true],
  ] as const)
    it(`a member whose disk was wiped comes back before its exclusion (${title}): excluded, it joins the next configuration, fetches the state and ends equal — never active with a state it lacks`, async () => {
      const c = await cluster(seed)
      c.load(5, 4_000)
      await c.sim.run({ until: 300 })
      let from = 0
      if (moveFirst) {
        c.sim.pause('n3', 1_200)
        expect(
          await c.until(
            () => FIRST.every((n) => c.group(n)?.configuration === 1 && c.recState(n) === 'active'),
            6_000,
          ),
        ).toBe(true)
        from = 1
        await c.sim.run({ until: c.sim.now + 300 })
      }
      // Down 50 ms: far less than the suspicion timeout (400 ms).
      await c.wipe('n3', 50)
      expect(c.group('n1')!.get(MEMBERSHIP).view().members).toContain('n3')
      // Whenever the wiped member is active, its state holds every increment acknowledged
      // before its disk was wiped (an empty state would not).
      const ackedBefore = new Map(c.acked)
      let wrong: string | undefined
      c.sim.every(5, 8_000, () => {
        if (wrong !== undefined || !c.sim.isUp('n3') || c.recState('n3') !== 'active') return
        const state = c.client('n3').state() as Kv
        for (const [key, n] of ackedBefore)
          if ((state[key] ?? 0) < n) wrong = `n3 active with ${key}=${state[key] ?? 0} < ${n}`
      })
      // A wall-clock budget too: without the fix the wiped member's fresh chain collides with
      // its old one and the retransmissions between them never end (the virtual time crawls).
      const back = await c.until(
        () =>
          FIRST.every(
            (n) => (c.group(n)?.configuration ?? -1) > from && c.recState(n) === 'active',
          ),
        8_000,
        30_000,
      )
      expect(wrong).toBeUndefined()
      expect(back).toBe(true)
      expect(await c.until(() => false, 8_000, 30_000)).toBe(false)
      expect(c.sim.now).toBeGreaterThanOrEqual(8_000)
      expect(wrong).toBeUndefined()
      const configuration = c.group('n1')!.configuration
      for (const n of FIRST) {
        expect(c.group(n)!.configuration).toBe(configuration)
        expect(c.group(n)!.members).toEqual(FIRST)
        expect(c.recState(n)).toBe('active')
      }
      expect(c.sim.host('n3').stats().recovery?.transfersCompleted).toBeGreaterThanOrEqual(1)
      const s1 = c.client('n1').state() as Kv
      expect(Object.keys(s1).length).toBeGreaterThan(100)
      expect(c.client('n2').state()).toEqual(s1)
      expect(c.client('n3').state()).toEqual(s1)
      c.checkDurability(s1)
    })

  it('an Order whose holdAfter does nothing: no member is at the end of the wave when it moves, so none carries a state (never a wrong one) — all wait for one nobody has', async () => {
    const c = await cluster(21, 'semantic')
    for (const n of FIRST) {
      const order = c.group(n)!.get(ORDER) as { holdAfter?: unknown }
      order.holdAfter = () => {}
    }
    c.load(5, 2_000, 1)
    await c.sim.run({ until: 400 })
    void joinGroup(c.sim.host('n4'), { port: 'g', contacts: ['n2'] }).catch(() => {})
    await c.sim.run({ until: 2_500 })
    for (const n of FIRST) {
      const st = c.sim.host(n).stats().recovery!
      expect(st.joinUnseeded).toBe(1)
      expect(st.joinCarried).toBeUndefined()
      expect(c.recState(n)).toBe('transferring')
      // Asked, and refused: there is no checkpoint of configuration 1 anywhere.
      expect(st.transferRefused).toBeGreaterThan(0)
    }
  })

  it('an excluded member comes back by itself: paused past its timeout it is excluded, then asks to rejoin, the group moves into configuration 1 with it, and it fetches the state', async () => {
    const c = await cluster(22)
    c.load(5, 2_500)
    await c.sim.run({ until: 300 })
    c.sim.pause('n3', 1_200)
    await c.sim.run({ until: 1_300 })
    // Excluded by the others meanwhile.
    expect(c.group('n1')!.get(MEMBERSHIP).view().members).toEqual(['n1', 'n2'])
    expect(
      await c.until(
        () => FIRST.every((n) => c.group(n)?.configuration === 1 && c.recState(n) === 'active'),
        6_000,
      ),
    ).toBe(true)
    await c.sim.run({ until: 4_000 })
    for (const n of FIRST) expect(c.group(n)!.members).toEqual(FIRST)
    const st = c.sim.host('n3').stats().recovery!
    expect(st.transfersCompleted).toBeGreaterThanOrEqual(1)
    const s1 = c.client('n1').state() as Kv
    expect(c.client('n2').state()).toEqual(s1)
    expect(c.client('n3').state()).toEqual(s1)
    c.checkDurability(s1)
    // n1 saw n3 leave (view 1 of configuration 0), then come back (view 0 of configuration 1).
    const kinds = c.views
      .get('n1')!
      .map((v) => `${v.view.configuration}.${v.view.id}:${v.reason.kind}`)
    expect(kinds).toEqual(['0.1:failure', '1.0:join'])
    expect(c.views.get('n1')![1]!.joined).toEqual(['n3'])
  })

  it('a newcomer that crashes mid-transfer comes back (joinGroup again at its start) and finishes; a member that crashes right after moving restarts from the state it carried', async () => {
    // Paced, so that the transfer of a few kilobytes takes a while.
    const c = await cluster(23, 'total', 4_000)
    c.load(5, 2_500)
    await c.sim.run({ until: 300 })
    joinGroup(c.sim.host('n4'), { port: 'g', contacts: ['n1', 'n3'] }).catch(() => {})
    expect(
      await c.until(() => c.group('n4')?.get(RECOVERY).state() === 'transferring', 3_000),
    ).toBe(true)
    // n1 moved already: crash it, and the newcomer, which is fetching.
    expect(c.group('n1')!.configuration).toBe(1)
    c.sim.crash('n4')
    c.sim.crash('n1')
    await c.sim.run({ until: c.sim.now + 50 })
    await c.sim.restart('n1')
    await c.sim.restart('n4')
    expect(
      await c.until(() => ['n1', 'n2', 'n3', 'n4'].every((n) => c.recState(n) === 'active'), 8_000),
    ).toBe(true)
    await c.sim.run({ until: 4_000 })
    expect(c.sim.host('n1').stats().recovery?.transfersCompleted ?? 0).toBe(0)
    const s2 = c.client('n2').state() as Kv
    for (const n of ['n1', 'n3', 'n4']) expect(c.client(n).state()).toEqual(s2)
    c.checkDurability(s2)
  })

  it('an Order without holdAfter cannot take joins: the member refuses and joinGroup rejects with the reason', async () => {
    const c = await cluster(24)
    for (const n of FIRST) {
      const order = c.group(n)!.get(ORDER) as { holdAfter?: unknown }
      order.holdAfter = undefined
    }
    const error = await new Promise<unknown>((resolve) => {
      joinGroup(c.sim.host('n4'), { port: 'g', contacts: ['n1'] }).then(resolve, resolve)
      void c.until(() => false, 1_000)
    })
    expect(error).toMatchObject({ code: 'RECOVERY_FAILED' })
    expect(String((error as Error).message)).toMatch(/holdAfter/)
    expect(c.group('n1')!.configuration).toBe(0)
  })

  it('admit decides who may join: a host it refuses keeps asking, is never taken in, and joinGroup times out', async () => {
    const c = await cluster(26, 'total', 0, (joiner) => joiner !== 'n4')
    const error = await new Promise<unknown>((resolve) => {
      joinGroup(c.sim.host('n4'), { port: 'g', contacts: ['n1', 'n2'], timeoutMs: 1_000 }).then(
        resolve,
        resolve,
      )
      void c.until(() => false, 1_500)
    })
    expect(error).toMatchObject({ code: 'RECOVERY_FAILED' })
    expect(String((error as Error).message)).toMatch(/no member took n4 in within 1000 ms/)
    expect(c.sim.host('n1').stats().recovery?.joinNotAdmitted).toBeGreaterThan(0)
    for (const n of FIRST) expect(c.group(n)!.configuration).toBe(0)
  })

  it('bad arguments to joinGroup are refused before anything is sent', async () => {
    const c = await cluster(25)
    const host = c.sim.host('n4')
    await expect(joinGroup(host, { port: 'g', contacts: [] })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    })
    await expect(joinGroup(host, { port: 'g', contacts: ['n4'] })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    })
    await expect(
      joinGroup(host, { port: 'g', contacts: ['n1'], retryMs: 0 }),
    ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
    await expect(
      joinGroup(c.sim.host('n1'), { port: 'g', contacts: ['n2'] }),
    ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
  })
})
