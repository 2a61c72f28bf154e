/**
 * Configurations of a group (what a join moves the group through): each its own wire tag and
 * storage; `SessionContext.reconfigure` writes the next record and a seed in one batch and
 * reopens the group there; the lobby carries datagrams from hosts outside the conversation.
 */
import { describe, expect, it } from 'vitest'
import {
  type Lobby,
  MemoryStorage,
  type NextConfiguration,
  RECOVERY,
  type SessionContext,
  seededRandom,
  stack,
  untilActive,
  XKernelError,
} from '../src/index.js'
import { groupTag, lobbyTag, sessionScope } from '../src/members.js'
import { LoopbackNetwork, ManualClock } from './fakes.js'

const bytes = (...b: number[]) => Uint8Array.from(b)
const encoder = new TextEncoder()

interface Probe {
  ctx?: SessionContext<Record<string, never>>
  lobby?: Lobby
  heard: [string, number[]][]
  restored: number[][]
  carried: NextConfiguration[]
  opens: number
}

/** One protocol that keeps a value in storage, carries it, and listens on the lobby. */
function probe(p: Probe) {
  return {
    name: 'probe',
    requires: [],
    provides: [],
    raises: [],
    observes: [],
    create: () => ({
      open: (ctx: SessionContext<Record<string, never>>) => {
        p.ctx = ctx
        p.opens++
        p.lobby = ctx.claimLobby()
        p.lobby.onReceive((from, payload) => void p.heard.push([from, [...payload]]))
        return {
          controls: {},
          checkpoint: () => bytes(1),
          restore: (state: Uint8Array) => void p.restored.push([...state]),
          carry: (next: NextConfiguration) => {
            p.carried.push(next)
            return bytes(42, next.configuration)
          },
        }
      },
    }),
  }
}

async function world() {
  const network = new LoopbackNetwork('sync', ['a', 'b', 'c'])
  const p: Probe = { heard: [], restored: [], carried: [], opens: 0 }
  const storage = new MemoryStorage({ name: 'disk-a' })
  const clock = new ManualClock()
  const host = await stack()
    .use(probe(p) as never)
    .start({ transport: network.transport('a'), clock, random: seededRandom(1), storage })
  const outsider = await stack().start({
    transport: network.transport('c'),
    clock,
    random: seededRandom(2),
  })
  return { network, p, storage, host, outsider, clock }
}

describe('configurations', () => {
  it('each configuration has its own wire tag and storage prefix; configuration 0 keeps the old ones', () => {
    expect(groupTag('g', ['a', 'b'], 0)).toBe(groupTag('g', ['b', 'a']))
    expect(groupTag('g', ['a', 'b'], 1)).not.toBe(groupTag('g', ['a', 'b'], 0))
    expect(groupTag('g', ['a', 'b'], 1)).not.toBe(groupTag('g', ['a', 'b'], 2))
    expect(lobbyTag('g')).not.toBe(groupTag('g', ['a', 'b']))
    expect(sessionScope('psync', 'g', 0)).toBe('psync/g/')
    expect(sessionScope('psync', 'g', 3)).toBe('psync/g@3/')
  })

  it('reconfigure writes the next record and the seed in one batch, reopens the group there (hooks again), and deletes the old configuration keys', async () => {
    const { p, storage, host } = await world()
    const starts: number[] = []
    const g0 = await host.open(
      { port: 'g', members: ['a', 'b'] },
      { beforeStart: (g) => void starts.push(g.configuration) },
    )
    expect(g0.configuration).toBe(0)
    p.ctx!.storage.put('old', bytes(1))
    // A key of another port that merely starts the same way survives the cleanup.
    storage.put('probe/g2/keep', bytes(9))
    const moved: unknown[] = []
    host.events.on('group.reconfigured', (e) => void moved.push(e))
    const carried = p.ctx!.checkpoints.carry({
      configuration: 1,
      members: ['a', 'b', 'c'],
      joined: ['c'],
      decidedBy: 'a',
    })
    expect(carried).toEqual([{ protocol: 'probe', state: bytes(42, 1) }])
    await p.ctx!.reconfigure({
      members: ['c', 'b', 'a'],
      seed: [{ type: 'put', key: 'seed', value: bytes(7) }],
    })
    const g1 = host.group('g')!
    expect(g1).not.toBe(g0)
    expect(g1.configuration).toBe(1)
    expect(g1.members).toEqual(['a', 'b', 'c'])
    expect(starts).toEqual([0, 1])
    expect(p.ctx!.group.reconfigured).toBe(true)
    expect(p.ctx!.storage.get('seed')).toEqual(bytes(7))
    expect(storage.get('probe/g@1/seed')).toEqual(bytes(7))
    expect(storage.get('probe/g/old')).toBeUndefined()
    expect(storage.get('probe/g2/keep')).toEqual(bytes(9))
    expect(moved).toEqual([{ group: 'g', configuration: 1, members: ['a', 'b', 'c'] }])
    expect(() => g0.get({ name: 'x' } as never)).toThrow(/closed/)
    // The record says configuration 1: a restarted host comes back there, not reconfigured.
    expect(host.storedGroups()).toEqual([{ port: 'g', members: ['a', 'b', 'c'], configuration: 1 }])
    const g1b = await g1.restart()
    expect(g1b.configuration).toBe(1)
    expect(p.ctx!.group.reconfigured).toBe(false)
    expect(p.ctx!.group.restoring).toBe(true)
    expect(starts).toEqual([0, 1, 1])
  })

  it('bad arguments to reconfigure reject before anything is written', async () => {
    const { p, storage, host } = await world()
    await host.open({ port: 'g', members: ['a', 'b'] })
    const before = [...storage.scan({ prefix: '' })].length
    const bad = async (next: unknown) => {
      const error = await p.ctx!.reconfigure(next as never).catch((e: unknown) => e)
      expect(XKernelError.isInstance(error) && error.code).toBe('INVALID_ARGUMENT')
    }
    await bad({ members: ['b'] }) // without this host
    await bad({ members: ['a', 'zz'] }) // not a peer
    await bad({ members: ['a', 'b'], configuration: 0 }) // not above the current one
    await bad({ members: ['a', 'b'], configuration: 1.5 })
    await bad({ members: ['a', 'b'], seed: 'nope' })
    expect([...storage.scan({ prefix: '' })].length).toBe(before)
    expect(host.group('g')!.configuration).toBe(0)
  })

  it('open takes a configuration (an integer >= 0) and records it', async () => {
    const { host } = await world()
    await expect(host.open({ port: 'g', members: ['a'], configuration: -1 })).rejects.toThrow(
      /configuration must be an integer/,
    )
    const g = await host.open({ port: 'g', members: ['a', 'b'], configuration: 4 })
    expect(g.configuration).toBe(4)
    expect(host.describe().groups).toEqual([{ port: 'g', members: ['a', 'b'], configuration: 4 }])
    // A record with a bad configuration is skipped, counted, as any unreadable record.
    host.storage.put(
      'xkernel/group/h',
      encoder.encode(JSON.stringify({ port: 'h', members: ['a'], configuration: 'x' })),
    )
    expect(host.storedGroups().map((s) => s.port)).toEqual(['g'])
  })

  it('the lobby: a host outside the group reaches its members, and they answer; nothing of it enters the conversation', async () => {
    const { p, host, outsider, network } = await world()
    await host.open({ port: 'g', members: ['a', 'b'] })
    const lobby = outsider.lobby('g')
    const heard: [string, number[]][] = []
    lobby.onReceive((from, payload) => void heard.push([from, [...payload]]))
    lobby.send('a', bytes(1, 2, 3))
    expect(p.heard).toEqual([['c', [1, 2, 3]]])
    p.lobby!.send('c', bytes(9))
    expect(heard).toEqual([['a', [9]]])
    expect(host.stats().xkernel?.lobbyReceived).toBe(1)
    // A datagram of the group's conversation from the outsider is still dropped (non-member).
    network.inject('c', 'a', bytes(0, 0, 0, 0))
    expect(() => lobby.send('zz', bytes(1))).toThrow(/not a peer/)
    expect(() => lobby.send('c', bytes(1))).toThrow(/not a peer/)
    expect(() => outsider.lobby('g')).toThrow(/already open/)
    expect(() => p.ctx!.claimLobby()).toThrow(/already holds/)
    lobby.close()
    p.lobby!.send('c', bytes(8))
    expect(heard).toEqual([['a', [9]]])
    expect(outsider.stats().xkernel?.droppedUnknownGroup ?? 0).toBeGreaterThanOrEqual(1)
  })
})

describe('untilActive across a move or a restart', () => {
  it.each(['move', 'restart'] as const)(
    'follows a group whose %s takes longer than a few timer turns (a slow close below, as on a real disk)',
    async (how) => {
      let gate!: () => void
      const slowClose = new Promise<void>((resolve) => (gate = resolve))
      let ctx: SessionContext<Record<string, never>> | undefined
      let opens = 0
      let recOpens = 0
      const slow = {
        name: 'slow',
        requires: [],
        provides: [],
        raises: [],
        observes: [],
        create: () => ({
          open: (c: SessionContext<Record<string, never>>) => {
            ctx = c
            const first = opens++ === 0
            return { controls: {}, close: () => (first ? slowClose : undefined) }
          },
        }),
      }
      const rec = {
        name: 'rec',
        requires: [],
        provides: [RECOVERY],
        raises: [],
        observes: [],
        create: () => ({
          open: (c: SessionContext<Record<string, never>>) => {
            let fail!: (e: unknown) => void
            const ready =
              recOpens++ === 0
                ? new Promise<void>((_, reject) => (fail = reject))
                : Promise.resolve()
            ready.catch(() => {})
            return {
              controls: { recovery: { ready: () => ready, state: () => 'recovering' } },
              close: () => fail?.(new XKernelError('GROUP_CLOSED', `group ${c.group.port} closed`)),
            }
          },
        }),
      }
      const network = new LoopbackNetwork('sync', ['a', 'b'])
      const clock = new ManualClock()
      const host = await stack()
        .use(slow as never)
        .use(rec as never)
        .start({ transport: network.transport('a'), clock, random: seededRandom(1) })
      const g0 = await host.open({ port: 'g', members: ['a', 'b'] })
      let followed: unknown
      const active = untilActive(host, g0, 0).then(
        (g) => (followed = g),
        (e: unknown) => (followed = e),
      )
      const moved = how === 'move' ? ctx!.reconfigure({ members: ['a', 'b'] }) : ctx!.restart()
      for (let i = 0; i < 20; i++) {
        await new Promise((r) => setTimeout(r, 0))
        clock.advance(5)
      }
      expect(host.group('g')).toBeUndefined() // still closing
      expect(host.moving('g')).toBeDefined()
      expect(followed).toBeUndefined() // not given up
      gate()
      await moved
      await active
      expect(followed).toBe(host.group('g'))
      expect((followed as { configuration: number }).configuration).toBe(how === 'move' ? 1 : 0)
      expect(host.moving('g')).toBeUndefined()
    },
  )
})
