/**
 * Datagrams damaged on a link: the sending endpoint computes a CRC32C over what it sent, the
 * receiving endpoint checks what arrived, and a damaged datagram is counted (`droppedCorrupt`)
 * and dropped — never handed to a protocol. On a clean link no checksum is computed at all
 * (and draws nothing more from the random: it delivers exactly what the older code did).
 */
import { readFileSync } from 'node:fs'
import { seededRandom } from '@consul/xkernel'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { describeLink, dist, type LinkConfig, SimNetwork } from '../src/index.js'
import { crc32c } from '../src/network.js'
import { bareNetwork as bare, cleanRun, cleanWorkloads, payload } from './fixtures/bare-network.js'

const bareNetwork = (seed: number, defaults: Partial<LinkConfig> = {}) =>
  bare(SimNetwork, seed, defaults)

/** What the network delivered before corruption existed (captured from the older code). */
const before = JSON.parse(
  readFileSync(new URL('./fixtures/bare-network-v1.json', import.meta.url), 'utf8'),
) as Record<string, ReturnType<typeof cleanRun>>

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

afterEach(() => {
  vi.restoreAllMocks()
})

describe('crc32c', () => {
  it('is CRC32C (the check value of "123456789" is 0xE3069283)', () => {
    expect(crc32c(new TextEncoder().encode('123456789'))).toBe(0xe3069283)
    expect(crc32c(new Uint8Array(0))).toBe(0)
  })

  it('detects every 1- and 2-bit error of a 64-byte datagram, and sampled 3-bit errors', () => {
    const data = payload(3, 64)
    const good = crc32c(data)
    const bits = data.length * 8
    const flip = (d: Uint8Array, bit: number) => {
      d[bit >>> 3]! ^= 1 << (bit & 7)
    }
    for (let i = 0; i < bits; i++) {
      const d = data.slice()
      flip(d, i)
      expect(crc32c(d)).not.toBe(good)
      for (let j = i + 1; j < bits; j++) {
        flip(d, j)
        if (crc32c(d) === good) expect.fail(`bits ${i} and ${j} collide`)
        flip(d, j)
      }
    }
    const random = seededRandom(5)
    for (let n = 0; n < 20_000; n++) {
      const d = data.slice()
      const picked = new Set<number>()
      while (picked.size < 3) picked.add(random.int(bits))
      for (const bit of picked) flip(d, bit)
      if (crc32c(d) === good) expect.fail(`bits ${[...picked]} collide`)
    }
  })
})

describe('corrupted datagrams', () => {
  it('are counted and dropped; every datagram a handler sees is intact, and every send is accounted for', () => {
    const net = bareNetwork(21, {
      delay: dist.uniform(0.5, 3),
      corrupt: 0.3,
      loss: 0.1,
      duplicate: 0.2,
    })
    const sent = new Map<string, Set<string>>() // "from>to" -> payloads
    const remember = (from: number, to: number, data: Uint8Array) => {
      const key = `${net.nodes[from]}>${net.nodes[to]}`
      if (!sent.has(key)) sent.set(key, new Set())
      sent.get(key)!.add(hex(data))
    }
    for (let n = 0; n < 1_500; n++) {
      const from = n % 3
      const data = payload(from, n)
      if (n % 2 === 0) {
        const to = (from + 1 + (n % 4 === 0 ? 0 : 1)) % 3
        remember(from, to, data)
        net.endpoints[from]!.send(net.nodes[to]!, data)
      } else {
        for (let to = 0; to < 3; to++) if (to !== from) remember(from, to, data)
        net.endpoints[from]!.broadcast(data)
      }
      // Node c is down for a while: damaged copies to it are dropped as down, not as corrupt.
      if (n === 500) net.down.add(2)
      if (n === 700) net.down.delete(2)
      if (n === 900) net.network.block('a', 'b')
      if (n === 1_000) net.network.heal()
      net.runUntil(n * 0.5)
    }
    net.runUntil(10_000)
    const c = net.network.counters
    expect(c.corrupted).toBeGreaterThan(300)
    expect(c.droppedCorrupt).toBeGreaterThan(300)
    expect(c.droppedCorrupt).toBeLessThanOrEqual(c.corrupted)
    expect(c.droppedDown).toBeGreaterThan(0)
    expect(c.droppedPartition).toBeGreaterThan(0)
    // Every datagram delivered is byte for byte one that was sent on that link.
    expect(net.received).toHaveLength(c.delivered)
    for (const r of net.received) {
      expect(
        sent.get(`${r.from}>${r.to}`)?.has(hex(r.data)),
        `${r.from}>${r.to} ${hex(r.data)}`,
      ).toBe(true)
    }
    // Every copy is delivered or dropped for exactly one reason.
    expect(c.sent + c.duplicated).toBe(
      c.delivered + c.droppedLoss + c.droppedPartition + c.droppedDown + c.droppedCorrupt,
    )
    // The endpoints count the same drops and receipts.
    const stats = net.endpoints.map((e) => e.stats())
    expect(stats.reduce((s, x) => s + x.droppedCorrupt!, 0)).toBe(c.droppedCorrupt)
    expect(stats.reduce((s, x) => s + x.received!, 0)).toBe(c.delivered)
    expect(stats.reduce((s, x) => s + x.sent!, 0)).toBe(c.sent)
    for (const s of stats) expect(s.droppedCorrupt).toBeGreaterThan(0)
  })

  it('damages by 1–3 flipped bits or by truncation, and the receiver sees neither', () => {
    const net = bareNetwork(3, { delay: dist.constant(1), corrupt: 1 })
    const damage = vi.spyOn(
      SimNetwork.prototype as unknown as { damage(d: Uint8Array): Uint8Array },
      'damage',
    )
    const data = payload(0, 64)
    for (let i = 0; i < 300; i++) net.endpoints[0]!.send('b', data)
    net.runUntil(10)
    const damaged = damage.mock.results.map((r) => r.value as Uint8Array)
    expect(damaged).toHaveLength(300)
    const popcount = (x: number) => x.toString(2).replace(/0/g, '').length
    let truncated = 0
    let flippedOnly = 0
    for (const d of damaged) {
      if (d.length < data.length) truncated++
      else {
        expect(d.length).toBe(data.length)
        const bits = d.reduce((sum, byte, i) => sum + popcount(byte ^ data[i]!), 0)
        expect(bits).toBeGreaterThanOrEqual(1)
        expect(bits).toBeLessThanOrEqual(3)
        flippedOnly++
      }
    }
    expect(truncated).toBeGreaterThan(150)
    expect(flippedOnly).toBeGreaterThan(70)
    // Same length with flipped bits: exactly the case the CRC, not the length, must catch.
    expect(net.received).toEqual([])
    expect(net.network.counters.droppedCorrupt).toBe(300)
  })

  it('a link that damages everything delivers nothing, but empty datagrams arrive intact', () => {
    const net = bareNetwork(4, { delay: dist.constant(1), corrupt: 1 })
    for (let i = 0; i < 100; i++) net.endpoints[0]!.broadcast(payload(0, 1 + (i % 80)))
    net.endpoints[1]!.send('c', new Uint8Array(0))
    net.runUntil(10)
    expect(net.network.counters.droppedCorrupt).toBe(200)
    expect(net.received.map((r) => [r.from, r.to, r.data.length])).toEqual([['b', 'c', 0]])
    expect(net.endpoints[1]!.stats()).toEqual({ sent: 1, received: 0, droppedCorrupt: 100 })
  })

  it('on a clean link delivers exactly what the network delivered before corruption existed', () => {
    for (const [name, link] of Object.entries(cleanWorkloads)) {
      for (let seed = 1; seed <= 4; seed++) {
        for (const config of [link, { ...link, corrupt: 0 }]) {
          const now = cleanRun(SimNetwork, seed, config)
          const counters = now.counters as SimNetwork['counters']
          const { droppedCorrupt, corrupted, ...older } = counters
          expect([droppedCorrupt, corrupted]).toEqual([0, 0])
          expect({ ...now, counters: older }, `${name}/${seed}`).toEqual(before[`${name}/${seed}`])
        }
      }
    }
  })

  it('on a clean link computes no checksum at all', () => {
    const spy = vi.spyOn(
      SimNetwork.prototype as unknown as { checksum(d: Uint8Array): number },
      'checksum',
    )
    const traffic = (net: ReturnType<typeof bareNetwork>) => {
      for (let n = 0; n < 300; n++) net.endpoints[n % 3]!.broadcast(payload(n % 3, n))
      net.runUntil(1_000)
      return net
    }
    const clean = traffic(bareNetwork(8, { loss: 0.1, duplicate: 0.1, reorder: 0.2, corrupt: 0 }))
    expect(spy).not.toHaveBeenCalled()
    expect(clean.network.counters.droppedCorrupt).toBe(0)
    expect(clean.network.counters.delivered).toBeGreaterThan(400)
    // The positive control: a corrupting link checksums every send and every arrival.
    const dirty = traffic(
      bareNetwork(8, { loss: 0.1, duplicate: 0.1, reorder: 0.2, corrupt: 0.01 }),
    )
    const c = dirty.network.counters
    // Once per send that passed loss, once per arrival (a cut-short one fails on its length).
    const sends = c.sent - c.droppedLoss - c.droppedPartition
    expect(spy.mock.calls.length).toBeGreaterThanOrEqual(sends + c.delivered)
    expect(spy.mock.calls.length).toBeLessThanOrEqual(sends + c.delivered + c.droppedCorrupt)
  })

  it('corrupt is validated like loss and shown by describeLink', () => {
    const net = bareNetwork(1)
    expect(() => net.network.configure({ corrupt: 1.5 })).toThrow(RangeError)
    expect(() => net.network.configure({ corrupt: -0.1 })).toThrow(/corrupt/)
    expect(
      () => new SimNetwork(null as never, ['a'], seededRandom(1), { corrupt: Number.NaN }),
    ).toThrow(RangeError)
    net.network.configure({ corrupt: 0.012 }, 'a', 'b')
    expect(net.network.linkConfig('a', 'b').corrupt).toBe(0.012)
    expect(net.network.linkConfig('b', 'a').corrupt).toBe(0)
    expect(describeLink(net.network.linkConfig('a', 'b'))).toContain('corrupt=0.012')
    expect(describeLink(net.network.linkConfig('b', 'a'))).not.toContain('corrupt')
  })
})
