/**
 * Real processes on loopback: two group members in child processes, and this process as an
 * on-path attacker between them. Each member is configured with the attacker's relay port as
 * the other's address, so every datagram passes through here: the relay forwards it, sends
 * it again at once, and later replays everything it recorded. Every message must still arrive
 * exactly once and in order, and every replay must be counted. Then the members rotate their
 * keys under load, through the same relay, without a lost message or a drop.
 */
import { type ChildProcess, fork } from 'node:child_process'
import { createSocket, type Socket } from 'node:dgram'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { MemberCommand, MemberConfig, MemberReport } from './fixtures/group-member.js'
import { freePorts, waitFor } from './net.js'

const HOST = '127.0.0.1'
const IDS = ['a', 'b'] as const
const hex = (fill: number) => Buffer.alloc(32, fill).toString('hex')
const K0 = { id: 0, hex: hex(0x11) }
const K1 = { id: 1, hex: hex(0x22) }

interface Member {
  readonly child: ChildProcess
  readonly port: number
}

function ask<T>(child: ChildProcess, command: MemberConfig | MemberCommand): Promise<T> {
  return new Promise((resolve) => {
    child.once('message', (m) => resolve(m as T))
    child.send(command)
  })
}

/** The relay: socket `relay[m]` stands for member m; what arrives there goes on to m. */
class Relay {
  readonly sockets = new Map<string, Socket>()
  readonly recorded: { bytes: Buffer; from: string; to: string }[] = []
  /** Replays sent to each member (immediate copies and the later bulk replay). */
  readonly replays: Record<string, number> = { a: 0, b: 0 }
  recording = true

  constructor(
    private readonly memberPorts: Record<string, number>,
    private readonly duplicate: boolean,
  ) {}

  async open(ports: Record<string, number>): Promise<void> {
    for (const id of IDS) {
      const socket = createSocket('udp4')
      await new Promise<void>((resolve) => socket.bind(ports[id], HOST, resolve))
      socket.on('message', (bytes, remote) => {
        const from = IDS.find((m) => this.memberPorts[m] === remote.port)
        if (from === undefined) return
        this.forward(bytes, from, id)
        if (this.duplicate) this.forward(bytes, from, id, true)
        if (this.recording) this.recorded.push({ bytes, from, to: id })
      })
      this.sockets.set(id, socket)
    }
  }

  forward(bytes: Uint8Array, from: string, to: string, replay = false): void {
    if (replay) this.replays[to]!++
    this.sockets.get(from)!.send(bytes, this.memberPorts[to]!, HOST)
  }

  async replayAll(): Promise<void> {
    for (const [i, d] of this.recorded.entries()) {
      this.forward(d.bytes, d.from, d.to, true)
      if (i % 50 === 0) await new Promise((resolve) => setTimeout(resolve, 1))
    }
  }

  close(): void {
    for (const s of this.sockets.values()) s.close()
  }
}

async function group(encrypt: boolean, duplicate: boolean) {
  const [pa, pb, ra, rb] = await freePorts(4, HOST)
  const memberPorts = { a: pa!, b: pb! }
  const relay = new Relay(memberPorts, duplicate)
  await relay.open({ a: ra!, b: rb! })
  const peers = { a: { host: HOST, port: ra! }, b: { host: HOST, port: rb! } }
  const members: Record<string, Member> = {}
  for (const id of IDS) {
    const child = fork(fileURLToPath(new URL('./fixtures/group-member.ts', import.meta.url)), [], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    })
    await ask(child, { self: id, port: memberPorts[id]!, peers, keys: [K0], encrypt })
    members[id] = { child, port: memberPorts[id]! }
  }
  const report = (id: string) => ask<MemberReport>(members[id]!.child, { cmd: 'report' })
  const close = () => {
    for (const m of Object.values(members)) m.child.kill()
    relay.close()
  }
  return { relay, members, report, close }
}

const replayDrops = (s: Record<string, number>) =>
  (s['drop.replayed'] ?? 0) + (s['drop.replayTooOld'] ?? 0)
const otherDrops = (s: Record<string, number>) =>
  Object.entries(s)
    .filter(([k, v]) => k.startsWith('drop.') && v > 0)
    .filter(([k]) => k !== 'drop.replayed' && k !== 'drop.replayTooOld')

describe.each([false, true])(
  'an on-path attacker replaying everything (encrypt: %s)',
  (encrypt) => {
    let g: Awaited<ReturnType<typeof group>>
    beforeAll(async () => {
      g = await group(encrypt, true)
    })
    afterAll(() => g?.close())

    it('changes nothing the members receive, and every replay is counted', async () => {
      const COUNT = 3000
      await Promise.all(
        IDS.map((id) => ask(g.members[id]!.child, { cmd: 'load', count: COUNT, perTurn: 30 })),
      )
      await waitFor(
        async () => {
          const [a, b] = await Promise.all([g.report('a'), g.report('b')])
          return a.received.b?.distinct === COUNT && b.received.a?.distinct === COUNT
        },
        'every message at both members',
        20_000,
      )
      g.relay.recording = false
      await g.relay.replayAll()
      await waitFor(
        async () => {
          const reports = await Promise.all(IDS.map((id) => g.report(id)))
          return reports.every((r, i) => replayDrops(r.stats) >= g.relay.replays[IDS[i]!]! * 0.99)
        },
        'the replays to be counted',
        20_000,
      )
      for (const id of IDS) {
        const r = await g.report(id)
        const from = id === 'a' ? 'b' : 'a'
        expect(r.received[from]).toEqual({ distinct: COUNT, duplicates: 0, inOrder: true })
        // Loopback may lose a few replays under load; none may be delivered, none miscounted.
        expect(replayDrops(r.stats)).toBeLessThanOrEqual(g.relay.replays[id]!)
        expect(replayDrops(r.stats)).toBeGreaterThanOrEqual(g.relay.replays[id]! * 0.99)
        expect(otherDrops(r.stats)).toEqual([])
        expect(r.stats['received.messages']).toBe(COUNT)
      }
    })
  },
)

describe('key rotation under load, two processes', () => {
  let g: Awaited<ReturnType<typeof group>>
  beforeAll(async () => {
    g = await group(true, false)
  })
  afterAll(() => g?.close())

  it('adds a key, switches, retires the old one while both send: nothing lost or dropped', async () => {
    const COUNT = 6000
    for (const id of IDS) {
      await ask(g.members[id]!.child, { cmd: 'load', count: COUNT, perTurn: 20 })
    }
    const [a, b] = [g.members.a!.child, g.members.b!.child]
    const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
    await pause(50)
    await ask(a, { cmd: 'setKeys', keys: [K0, K1] })
    await pause(50)
    await ask(b, { cmd: 'setKeys', keys: [K0, K1] })
    await waitFor(async () => {
      const [ra, rb] = await Promise.all([g.report('a'), g.report('b')])
      return ra.sendKeys.b === 1 && rb.sendKeys.a === 1
    }, 'both members to seal with key 1')
    await ask(a, { cmd: 'setKeys', keys: [K1] })
    await pause(30)
    await ask(b, { cmd: 'setKeys', keys: [K1] })
    const [during] = await Promise.all([g.report('a')])
    expect(during!.sent).toBeLessThan(COUNT) // the rotation happened under load
    await waitFor(
      async () => {
        const [ra, rb] = await Promise.all([g.report('a'), g.report('b')])
        return ra.received.b?.distinct === COUNT && rb.received.a?.distinct === COUNT
      },
      'every message at both members',
      20_000,
    )
    for (const id of IDS) {
      const r = await g.report(id)
      expect(r.stats['received.messages']).toBe(COUNT)
      expect(Object.entries(r.stats).filter(([k, v]) => k.startsWith('drop.') && v > 0)).toEqual([])
    }
  })
})
