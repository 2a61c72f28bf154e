/**
 * Property-based fuzzing of the receive path (envelope, sender and address checks, trailer,
 * bundle and fragment decoding, reassembly) through the real transport core on a fake
 * socket. Valid datagrams come from the real sender (HMAC, AEAD or CRC32C), then get
 * truncated, bit-flipped, replayed, re-keyed or re-grouped. Whatever arrives, nothing throws;
 * with a key, nothing tampered ever reaches the handler, and in every mode a replay is
 * dropped and counted.
 *
 * `FUZZ_RUNS` sets the runs per property (default 2,000: 12,500 cases over the eight
 * properties in a few seconds). `pnpm fuzz` runs a million per property.
 */

import { hashString } from '@consul/xkernel'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { countBundle, forEachInBundle } from '../src/bundler.js'
import { FLAG_AUTHENTICATED, MAGIC_0, MAGIC_1, parseHeader, VERSION } from '../src/codec.js'
import { parseFragment } from '../src/fragments.js'
import { integrityFor } from '../src/integrity.js'
import { fragmentDatagram, sealBody } from './craft.js'
import { cluster, KEY } from './fakes.js'

const RUNS = Number(process.env.FUZZ_RUNS ?? 2000)
// Long runs (`pnpm fuzz`) need more than the configured 60 s per test.
const TIMEOUT_MS = Math.max(60_000, RUNS * 2)
const GROUP = 'fuzz'
const MAX_REASSEMBLY = 64 * 1024

function setup(keyed: boolean, encrypt = false) {
  const c = cluster(['a', 'b'], {
    ...(keyed ? { key: KEY, encrypt } : {}),
    groupId: GROUP,
    maxDatagram: 256,
    reassembly: { timeoutMs: 1000, maxBytes: MAX_REASSEMBLY },
  })
  const received: Uint8Array[] = []
  c.nodes.b!.onReceive((_, data) => received.push(data.slice()))
  /** The datagrams the real sender produces for `messages` (not delivered). */
  const encode = (messages: readonly Uint8Array[]): Uint8Array[] => {
    c.network.log.length = 0
    for (const m of messages) c.nodes.a!.send('b', m)
    c.turn.endTurn()
    c.network.lose()
    return c.network.log.map((d) => d.bytes)
  }
  const inject = (d: Uint8Array) => c.sockets.b!.inject(d, '10.0.0.1', 7001)
  const drops = () => {
    let n = 0
    for (const [name, value] of Object.entries(c.nodes.b!.stats())) {
      if (name.startsWith('drop.')) n += value
    }
    return n
  }
  return { c, received, encode, inject, drops, stats: () => c.nodes.b!.stats() }
}

const keyed = setup(true)
const aead = setup(true, true)
const plain = setup(false)
const anyMode = fc.constantFrom(keyed, aead, plain)
const keyedMode = fc.constantFrom(keyed, aead)

// Messages of every size class: empty, bundled, and fragmented (chunks are ~216 bytes).
const message = fc.oneof(
  { weight: 4, arbitrary: fc.uint8Array({ maxLength: 120 }) },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 200, maxLength: 1200 }) },
)
const messages = fc.array(message, { minLength: 1, maxLength: 6 })

// Each property empties `received` first, so long runs do not hold every message.

/** Messages as hex strings: vitest's deep equality is slow on many byte arrays. */
const hex = (list: readonly Uint8Array[]) => list.map((m) => Buffer.from(m).toString('hex'))

/** One datagram of what the sender made for `msgs`, chosen by `pick`. */
const chosen = (datagrams: Uint8Array[], pick: number) => datagrams[pick % datagrams.length]!

describe('fuzzing the datagram decoder', () => {
  it('pure decoders never throw and never point outside their input', {
    timeout: TIMEOUT_MS,
  }, () => {
    const context = { groupId: hashString(GROUP), integrity: integrityFor(KEY), maxDatagram: 256 }
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(), fc.nat(), (d, a, b) => {
        const header = parseHeader(d, context)
        if (typeof header !== 'string') expect(header.bodyEnd).toBeLessThanOrEqual(d.length)
        const start = d.length === 0 ? 0 : a % d.length
        const end = start + (d.length === start ? 0 : b % (d.length - start + 1))
        const n = countBundle(d, start, end)
        if (n >= 0) {
          let seen = 0
          forEachInBundle(d, start, end, (offset, length) => {
            expect(offset + length).toBeLessThanOrEqual(end)
            seen++
          })
          expect(seen).toBe(n)
        }
        const f = parseFragment(d, start, end)
        if (f !== undefined) {
          expect(f.chunkStart + f.chunkLength).toBe(end)
          expect(f.offset + f.chunkLength).toBeLessThanOrEqual(f.total)
        }
      }),
      { numRuns: RUNS },
    )
  })

  it('survives random bytes, plain or behind a plausible header', { timeout: TIMEOUT_MS }, () => {
    const prefix = new Uint8Array([MAGIC_0, MAGIC_1, VERSION, FLAG_AUTHENTICATED])
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 400 }),
        fc.boolean(),
        fc.boolean(),
        (noise, framed, useKey) => {
          const t = useKey ? keyed : plain
          const d = framed ? new Uint8Array([...prefix, ...noise]) : noise
          if (framed && !useKey) d[3] = 0
          t.received.length = 0
          const dropsBefore = t.drops()
          t.inject(d)
          // Keyed, noise cannot carry a valid MAC; plain, a valid CRC32C has odds of 2^-32.
          expect(t.received.length).toBe(0)
          expect(t.drops()).toBe(dropsBefore + 1)
        },
      ),
      { numRuns: RUNS },
    )
  })

  it('delivers exactly what was sent when nothing is tampered with', {
    timeout: TIMEOUT_MS,
  }, () => {
    fc.assert(
      fc.property(messages, anyMode, (msgs, t) => {
        t.received.length = 0
        for (const d of t.encode(msgs)) t.inject(d)
        expect(hex(t.received)).toEqual(hex(msgs))
      }),
      { numRuns: Math.ceil(RUNS / 2) },
    )
  })

  it('never delivers a truncated datagram (or a truncated AEAD tag) when keyed', {
    timeout: TIMEOUT_MS,
  }, () => {
    fc.assert(
      fc.property(messages, fc.nat(), fc.nat(), keyedMode, (msgs, pick, cut, t) => {
        const d = chosen(t.encode(msgs), pick)
        t.received.length = 0
        const dropsBefore = t.drops()
        // Cuts near the end shorten the tag (AEAD would accept a 4-byte GCM tag if asked).
        const length = pick % 2 === 0 ? cut % d.length : d.length - 1 - (cut % 15)
        t.inject(d.subarray(0, length))
        expect(t.received.length).toBe(0)
        expect(t.drops()).toBe(dropsBefore + 1)
      }),
      { numRuns: RUNS },
    )
  })

  it('drops every datagram with up to 4 flipped bits, keyed or not', {
    timeout: TIMEOUT_MS,
  }, () => {
    fc.assert(
      fc.property(
        messages,
        fc.nat(),
        fc.uniqueArray(fc.nat(), { minLength: 1, maxLength: 4 }),
        anyMode,
        (msgs, pick, bits, t) => {
          const d = chosen(t.encode(msgs), pick).slice()
          const flips = new Set(bits.map((b) => b % (d.length * 8)))
          for (const bit of flips) d[bit >> 3]! ^= 1 << (bit & 7)
          t.received.length = 0
          const dropsBefore = t.drops()
          t.inject(d)
          expect(t.received.length).toBe(0)
          // Without a key too: CRC32C has Hamming distance 6 up to 655-byte inputs, so every
          // error of up to 5 bits in these (at most 256-byte) datagrams is caught.
          expect(t.drops()).toBe(dropsBefore + 1)
        },
      ),
      { numRuns: RUNS },
    )
  })

  it('drops and counts every replay, in any order, in every mode', { timeout: TIMEOUT_MS }, () => {
    fc.assert(
      fc.property(
        messages,
        fc.integer({ min: 1, max: 3 }),
        anyMode,
        fc.nat(),
        (msgs, times, t, shuffle) => {
          const datagrams = t.encode(msgs).map((d) => d.slice())
          const copies = datagrams.map((d) => d.slice())
          t.received.length = 0
          for (const d of datagrams) t.inject(d)
          expect(hex(t.received)).toEqual(hex(msgs))
          const replayedBefore = t.stats()['drop.replayed']!
          const dropsBefore = t.drops()
          for (let i = 0; i < times; i++) {
            for (let j = 0; j < copies.length; j++) {
              t.inject(copies[(j + shuffle) % copies.length]!.slice())
            }
          }
          expect(hex(t.received)).toEqual(hex(msgs))
          const replays = times * copies.length
          expect(t.stats()['drop.replayed']! - replayedBefore).toBe(replays)
          expect(t.drops()).toBe(dropsBefore + replays)
        },
      ),
      { numRuns: Math.ceil(RUNS / 2) },
    )
  })

  it('drops datagrams of a foreign group, a forged MAC or a forged sender', {
    timeout: TIMEOUT_MS,
  }, () => {
    const forger = (key: Uint8Array, groupId: number, sender: string) => ({ key, groupId, sender })
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 100 }),
        fc.oneof(
          fc.constant(forger(KEY, hashString('other group'), 'a')),
          fc
            .uint8Array({ minLength: 16, maxLength: 32 })
            .map((k) => forger(k, hashString(GROUP), 'a')),
          fc.constant(forger(KEY, hashString(GROUP), 'eve')),
          fc.constant(forger(KEY, hashString(GROUP), 'b')),
        ),
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        fc.boolean(),
        (payload, who, randomMac, overwriteMac) => {
          const body = new Uint8Array([payload.length >> 8, payload.length & 0xff, ...payload])
          const d = sealBody(body, who)
          if (overwriteMac) d.set(randomMac, d.length - 16)
          keyed.received.length = 0
          const dropsBefore = keyed.drops()
          keyed.inject(d)
          expect(keyed.received.length).toBe(0)
          expect(keyed.drops()).toBe(dropsBefore + 1)
        },
      ),
      { numRuns: RUNS },
    )
  })

  it('keeps reassembly within its memory bound under a flood of authentic fragments', {
    timeout: TIMEOUT_MS,
  }, () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            messageId: fc.integer({ min: 0, max: 20 }),
            total: fc.integer({ min: 2, max: 40_000 }),
            chunkSize: fc.integer({ min: 1, max: 200 }),
            index: fc.nat(300),
          }),
          { minLength: 1, maxLength: 20 },
        ),
        (fragments) => {
          for (const f of fragments) {
            const offset = f.index * f.chunkSize
            const length = Math.max(0, Math.min(f.chunkSize, f.total - offset))
            const d = fragmentDatagram(
              { ...f, chunk: new Uint8Array(length) },
              { key: KEY, groupId: hashString(GROUP), sender: 'a' },
            )
            keyed.inject(d)
            expect(keyed.stats()['reassembly.bytes']).toBeLessThanOrEqual(MAX_REASSEMBLY)
          }
        },
      ),
      { numRuns: Math.ceil(RUNS / 4) },
    )
    // The flood left partial messages; the timeout clears them all.
    keyed.c.clock.advance(1000)
    expect(keyed.stats()['reassembly.partials']).toBe(0)
  })
})
