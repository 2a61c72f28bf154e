import { describe, expect, it } from 'vitest'
import {
  BUNDLE_ENTRY_OVERHEAD,
  countBundle,
  forEachInBundle,
  writeBundleEntry,
} from '../src/bundler.js'
import {
  type EnvelopeContext,
  FLAG_AUTHENTICATED,
  FLAG_ENCRYPTED,
  FLAG_FRAGMENT,
  HEADER_BYTES,
  MAX_U48,
  parseHeader,
  readU48,
  writeHeader,
  writeSequence,
  writeU48,
} from '../src/codec.js'
import { crcIntegrity, hmacIntegrity, type Integrity } from '../src/integrity.js'
import { KEY } from './fakes.js'

const keyed = hmacIntegrity(KEY)

/** A sealed bundle datagram with `messages`, as the outbox builds it. */
function datagram(
  messages: Uint8Array[],
  integrity: Integrity,
  options: { groupId?: number; senderId?: number; flags?: number } = {},
): Uint8Array {
  const size = HEADER_BYTES + messages.reduce((n, m) => n + 2 + m.length, 0)
  const out = new Uint8Array(size + integrity.trailerBytes)
  const flags = options.flags ?? integrity.flags
  writeHeader(out, flags, options.groupId ?? 42, options.senderId ?? 7)
  writeSequence(out, 0, 0, 0x0102_0304_0506, 0x0a0b_0c0d_0e0f)
  let at = HEADER_BYTES
  for (const m of messages) at = writeBundleEntry(out, at, m)
  integrity.seal(out, at, options.senderId ?? 7)
  return out
}

const context = (integrity: Integrity, maxDatagram = 1400): EnvelopeContext => ({
  groupId: 42,
  integrity,
  maxDatagram,
})

describe('datagram envelope', () => {
  it('writes the documented header layout', () => {
    const bytes = new Uint8Array(HEADER_BYTES)
    writeHeader(bytes, FLAG_AUTHENTICATED | FLAG_FRAGMENT, 0x01020304, 0xa0b0c0d0)
    writeSequence(bytes, 3, 4, 0x0102_0304_0506, 0xa0b0_c0d0_e0f0)
    expect([...bytes]).toEqual([
      0xc5, 0x7a, 2, 3, 1, 2, 3, 4, 0xa0, 0xb0, 0xc0, 0xd0, 3, 4, 1, 2, 3, 4, 5, 6, 0xa0, 0xb0,
      0xc0, 0xd0, 0xe0, 0xf0,
    ])
  })

  it('round-trips u48 epochs and counters up to 2^48 - 1', () => {
    const bytes = new Uint8Array(6)
    for (const v of [0, 1, 0xffff_ffff, 0x1_0000_0000, 2 ** 47 + 12345, MAX_U48]) {
      writeU48(bytes, 0, v)
      expect(readU48(bytes, 0)).toBe(v)
    }
  })

  it('parses what it wrote, with and without a key', () => {
    for (const integrity of [keyed, crcIntegrity]) {
      const d = datagram([new Uint8Array([1, 2, 3])], integrity)
      const header = parseHeader(d, context(integrity))
      expect(header).toEqual({
        flags: integrity.authenticated ? FLAG_AUTHENTICATED : 0,
        groupId: 42,
        senderId: 7,
        keyId: 0,
        newestKeyId: 0,
        epoch: 0x0102_0304_0506,
        counter: 0x0a0b_0c0d_0e0f,
        bodyEnd: d.length - integrity.trailerBytes,
      })
      expect(integrity.open(d, 7)).toBe(true)
    }
  })

  it('names the reason for each kind of bad envelope', () => {
    const good = datagram([new Uint8Array(5)], keyed)
    const ctx = context(keyed)
    const patched = (at: number, value: number) => {
      const copy = good.slice()
      copy[at] = value
      return parseHeader(copy, ctx)
    }
    expect(parseHeader(new Uint8Array(0), ctx)).toBe('truncated')
    expect(parseHeader(good.subarray(0, HEADER_BYTES + 16), ctx)).toBe('truncated')
    expect(patched(0, 0)).toBe('badMagic')
    expect(patched(1, 0)).toBe('badMagic')
    expect(patched(2, 1)).toBe('badVersion') // version 1 (12-byte header) is not read
    expect(patched(2, 3)).toBe('badVersion')
    expect(patched(3, 0x81)).toBe('badFlags')
    expect(patched(3, 0)).toBe('authMismatch')
    expect(patched(3, FLAG_AUTHENTICATED | FLAG_ENCRYPTED)).toBe('authMismatch')
    expect(patched(7, 43)).toBe('foreignGroup')
    expect(parseHeader(good, context(keyed, good.length - 1))).toBe('oversize')
    expect(parseHeader(datagram([new Uint8Array(5)], crcIntegrity), ctx)).toBe('authMismatch')
  })

  it('refuses a changed body with a key and without', () => {
    const signed = datagram([new Uint8Array(5)], keyed)
    signed[HEADER_BYTES + 3]! ^= 1
    expect(keyed.open(signed, 7)).toBe(false)
    const summed = datagram([new Uint8Array(5)], crcIntegrity)
    summed[HEADER_BYTES + 3]! ^= 1
    expect(crcIntegrity.open(summed, 7)).toBe(false)
  })
})

describe('bundles', () => {
  const body = (entries: number[][]) => {
    const out = new Uint8Array(entries.reduce((n, e) => n + BUNDLE_ENTRY_OVERHEAD + e.length, 0))
    let at = 0
    for (const e of entries) at = writeBundleEntry(out, at, Uint8Array.from(e))
    return out
  }
  const read = (b: Uint8Array) => {
    const out: number[][] = []
    forEachInBundle(b, 0, b.length, (offset, length) =>
      out.push([...b.subarray(offset, offset + length)]),
    )
    return out
  }

  it('packs entries as u16 length + bytes and reads them back in order', () => {
    const b = body([[1, 2, 3], [], [9]])
    expect([...b]).toEqual([0, 3, 1, 2, 3, 0, 0, 0, 1, 9])
    expect(countBundle(b, 0, b.length)).toBe(3)
    expect(read(b)).toEqual([[1, 2, 3], [], [9]])
  })

  it('counts -1 for an empty body, a dangling length byte or an entry past the end', () => {
    const b = body([[1, 2, 3]])
    expect(countBundle(b, 0, 0)).toBe(-1)
    expect(countBundle(new Uint8Array([0, 3, 1, 2]), 0, 4)).toBe(-1)
    expect(countBundle(new Uint8Array([0, 1, 5, 0]), 0, 4)).toBe(-1)
    expect(countBundle(b, 0, b.length - 1)).toBe(-1)
    expect(countBundle(new Uint8Array([0xff, 0xff, 1]), 0, 3)).toBe(-1)
  })

  it('reads only inside the given range', () => {
    const b = body([[7, 7]])
    const framed = new Uint8Array([0xee, ...b, 0xee])
    expect(countBundle(framed, 1, framed.length - 1)).toBe(1)
  })
})
