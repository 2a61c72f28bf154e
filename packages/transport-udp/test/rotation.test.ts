/**
 * Keyrings and rotation without downtime on a fake network: three members under continuous
 * load add a new key one at a time, switch to it per peer as each peer advertises it, then
 * retire the old one, and not one message is lost or dropped. Plus forged and unknown key ids.
 */
import { describe, expect, it } from 'vitest'
import { UdpTransportError } from '../src/errors.js'
import { bundleDatagram } from './craft.js'
import { cluster, KEY } from './fakes.js'

const K0 = KEY
const K1 = new Uint8Array(32).map((_, i) => 255 - i)
const K2 = new Uint8Array(32).fill(0x42)
const IDS = ['a', 'b', 'c'] as const
const drops = (stats: Record<string, number>) =>
  Object.fromEntries(Object.entries(stats).filter(([k, v]) => k.startsWith('drop.') && v > 0))

/** A 3-member cluster where every member sends to every other in every round. */
function loaded(encrypt: boolean) {
  const c = cluster(IDS, { keys: [{ id: 0, key: K0 }], encrypt })
  const received: Record<string, number> = { a: 0, b: 0, c: 0 }
  for (const id of IDS) c.nodes[id]!.onReceive(() => received[id]!++)
  let sent = 0
  const rounds = (n: number) => {
    for (let r = 0; r < n; r++) {
      for (const from of IDS) {
        for (const to of IDS) {
          if (to === from) continue
          for (let i = 0; i < 5; i++) c.nodes[from]!.send(to, new Uint8Array(40).fill(r))
          sent += 5
        }
      }
      c.settle()
    }
  }
  const total = () => received.a! + received.b! + received.c!
  const allDrops = () => Object.assign({}, ...IDS.map((id) => drops(c.nodes[id]!.stats())))
  const sendKeys = () =>
    Object.fromEntries(
      IDS.map((id) => [
        id,
        Object.values(c.nodes[id]!.keyStatus().peers)
          .map((p) => p.sendKeyId)
          .join(','),
      ]),
    )
  return { c, rounds, total, sent: () => sent, allDrops, sendKeys }
}

describe.each([false, true])('key rotation without downtime (encrypt: %s)', (encrypt) => {
  it('adds a key, switches to it per peer, retires the old one: nothing lost, nothing dropped', () => {
    const g = loaded(encrypt)
    const { c } = g
    g.rounds(3)
    // Step 1: one member at a time holds both keys; it keeps sealing with 0 for peers that
    // only advertise 0.
    c.nodes.a!.setKeys([
      { id: 0, key: K0 },
      { id: 1, key: K1 },
    ])
    g.rounds(3)
    expect(g.sendKeys()).toEqual({ a: '0,0', b: '0,0', c: '0,0' })
    expect(c.nodes.a!.stats()['keys.peersBehind']).toBe(2)
    c.nodes.b!.setKeys([
      { id: 0, key: K0 },
      { id: 1, key: K1 },
    ])
    g.rounds(3)
    // a and b now use key 1 between them, key 0 with c.
    expect(g.sendKeys()).toEqual({ a: '1,0', b: '1,0', c: '0,0' })
    c.nodes.c!.setKeys([
      { id: 0, key: K0 },
      { id: 1, key: K1 },
    ])
    g.rounds(3)
    expect(g.sendKeys()).toEqual({ a: '1,1', b: '1,1', c: '1,1' })
    for (const id of IDS) {
      expect(c.nodes[id]!.stats()['keys.peersBehind']).toBe(0)
      expect(Object.values(c.nodes[id]!.keyStatus().peers).map((p) => p.peerNewest)).toEqual([1, 1])
    }
    // Step 2: retire key 0, one member at a time.
    for (const id of IDS) {
      c.nodes[id]!.setKeys([{ id: 1, key: K1 }])
      g.rounds(2)
    }
    // And once more to key 2, adding on all members in the same turn.
    for (const id of IDS) {
      c.nodes[id]!.setKeys([
        { id: 1, key: K1 },
        { id: 2, key: K2 },
      ])
    }
    g.rounds(2)
    for (const id of IDS) c.nodes[id]!.setKeys([{ id: 2, key: K2 }])
    g.rounds(2)
    expect(g.sendKeys()).toEqual({ a: '2,2', b: '2,2', c: '2,2' })
    expect(g.total()).toBe(g.sent())
    expect(g.allDrops()).toEqual({})
  })

  it('a member restarted mid-rotation with both keys seals with the old one until it hears', () => {
    const g = loaded(encrypt)
    const { c } = g
    const both = [
      { id: 0, key: K0 },
      { id: 1, key: K1 },
    ]
    for (const id of IDS) c.nodes[id]!.setKeys(both)
    g.rounds(2)
    const restarted = c.restart('a', 2, { keys: both })
    expect(Object.values(restarted.keyStatus().peers).map((p) => p.sendKeyId)).toEqual([0, 0])
    g.rounds(2)
    expect(Object.values(restarted.keyStatus().peers).map((p) => p.sendKeyId)).toEqual([1, 1])
    expect(g.allDrops()).toEqual({})
  })
})

describe('keyrings', () => {
  it('drops datagrams naming a key id not held (before any cryptography) or sealed wrongly', () => {
    const c = cluster(['a', 'b'], {
      keys: [
        { id: 3, key: K0 },
        { id: 4, key: K1 },
      ],
    })
    const got: Uint8Array[] = []
    c.nodes.b!.onReceive((_, d) => got.push(d))
    const inject = (d: Uint8Array) => c.sockets.b!.inject(d, '10.0.0.1', 7001)
    const msg = [new Uint8Array([1])]
    inject(bundleDatagram(msg, { key: [{ id: 9, key: K0 }], sender: 'a' }))
    inject(bundleDatagram(msg, { key: [{ id: 0, key: K0 }], sender: 'a' }))
    // A key id the receiver holds, but another key behind it: the MAC fails.
    inject(bundleDatagram(msg, { key: [{ id: 4, key: K0 }], sender: 'a' }))
    expect(got).toEqual([])
    expect(drops(c.nodes.b!.stats())).toEqual({ 'drop.unknownKey': 2, 'drop.badMac': 1 })
    inject(bundleDatagram(msg, { key: [{ id: 4, key: K1 }], sender: 'a' }))
    expect(got).toHaveLength(1)
  })

  it('setKeys validates like the keys option, and needs a keyed transport', () => {
    const c = cluster(['a', 'b'], { key: K0 })
    expect(() => c.nodes.a!.setKeys([])).toThrow(UdpTransportError)
    expect(() => c.nodes.a!.setKeys([{ id: 1, key: new Uint8Array(4) }])).toThrow(/at least 16/)
    const plain = cluster(['a', 'b'])
    expect(() => plain.nodes.a!.setKeys([{ id: 1, key: K1 }])).toThrow(/started with key or keys/)
  })
})
