import { describe, expect, it } from 'vitest'
import {
  BUNDLE_ENTRY_OVERHEAD,
  countBundle,
  forEachInBundle,
  writeBundleEntry,
} from '../src/bundler.js'
import {
  checkTrailer,
  type EnvelopeContext,
  FLAG_AUTHENTICATED,
  FLAG_FRAGMENT,
  HEADER_BYTES,
  parseHeader,
  writeHeader,
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
  const flags = options.flags ?? (integrity.authenticated ? FLAG_AUTHENTICATED : 0)
  writeHeader(out, flags, options.groupId ?? 42, options.senderId ?? 7)
  let at = HEADER_BYTES
  for (const m of messages) at = writeBundleEntry(out, at, m)
  integrity.seal(out, at)
  return out
}

const context = (integrity: Integrity, maxDatagram = 1400): EnvelopeContext => ({
  groupId: 42,
  integrity,
  maxDatagram,
})

describe('datagram envelope', () => {
  it('writes the documented header layout', () => {
    const bytes = new Uint8Array(12)
    writeHeader(bytes, FLAG_AUTHENTICATED | FLAG_FRAGMENT, 0x01020304, 0xa0b0c0d0)
    expect([...bytes]).toEqual([0xc5, 0x7a, 1, 3, 1, 2, 3, 4, 0xa0, 0xb0, 0xc0, 0xd0])
  })

  it('parses what it wrote, with and without a key', () => {
    for (const integrity of [keyed, crcIntegrity]) {
      const d = datagram([new Uint8Array([1, 2, 3])], integrity)
      const header = parseHeader(d, context(integrity))
      expect(header).toEqual({
        flags: integrity.authenticated ? FLAG_AUTHENTICATED : 0,
        groupId: 42,
        senderId: 7,
        bodyEnd: d.length - integrity.trailerBytes,
      })
      expect(checkTrailer(d, integrity)).toBeUndefined()
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
    expect(patched(2, 2)).toBe('badVersion')
    expect(patched(3, 0x81)).toBe('badFlags')
    expect(patched(3, 0)).toBe('authMismatch')
    expect(patched(7, 43)).toBe('foreignGroup')
    expect(parseHeader(good, context(keyed, good.length - 1))).toBe('oversize')
    expect(parseHeader(datagram([new Uint8Array(5)], crcIntegrity), ctx)).toBe('authMismatch')
  })

  it('reports a bad trailer as badMac with a key and badCrc without', () => {
    const signed = datagram([new Uint8Array(5)], keyed)
    signed[HEADER_BYTES + 3]! ^= 1
    expect(checkTrailer(signed, keyed)).toBe('badMac')
    const summed = datagram([new Uint8Array(5)], crcIntegrity)
    summed[HEADER_BYTES + 3]! ^= 1
    expect(checkTrailer(summed, crcIntegrity)).toBe('badCrc')
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
