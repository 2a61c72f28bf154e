import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  DecodeError,
  MAX_VARINT,
  MAX_VARINT_BYTES,
  MessageBuffer,
  readUvarint,
  uvarintLength,
  writeUvarint,
  zigzagDecode,
  zigzagEncode,
} from '../src/index.js'

/** LEB128 of any non-negative bigint, written independently of the code under test. */
function leb128(value: bigint): number[] {
  const out: number[] = []
  do {
    let byte = Number(value & 0x7fn)
    value >>= 7n
    if (value > 0n) byte |= 0x80
    out.push(byte)
  } while (value > 0n)
  return out
}

function decode(bytes: readonly number[]): { value: number; length: number } {
  const out = { length: -1 }
  const value = readUvarint(Uint8Array.from(bytes), 0, bytes.length, out)
  return { value, length: out.length }
}

function decodeError(bytes: readonly number[]): DecodeError {
  try {
    decode(bytes)
  } catch (error) {
    expect(error).toBeInstanceOf(DecodeError)
    // The buffer's pop must agree with the low-level reader.
    expect(() => MessageBuffer.wrap(Uint8Array.from(bytes)).popUvarint()).toThrow(DecodeError)
    return error as DecodeError
  }
  throw new Error(`expected ${JSON.stringify(bytes)} to be rejected`)
}

const arbUvarint = fc.oneof(
  fc.maxSafeNat(),
  fc.integer({ min: 0, max: 1 << 16 }),
  fc.constantFrom(0, 127, 128, 2 ** 28 - 1, 2 ** 28, 2 ** 49 - 1, 2 ** 49, MAX_VARINT),
)

describe('unsigned varints', () => {
  it('match an independent LEB128 encoder, with the length uvarintLength predicts', () => {
    fc.assert(
      fc.property(arbUvarint, fc.integer({ min: 0, max: 8 }), (value, offset) => {
        const bytes = new Uint8Array(offset + MAX_VARINT_BYTES + 2)
        const after = writeUvarint(bytes, offset, value)
        const expected = leb128(BigInt(value))
        expect(after - offset).toBe(expected.length)
        expect(uvarintLength(value)).toBe(expected.length)
        expect(Array.from(bytes.subarray(offset, after))).toEqual(expected)
        const out = { length: 0 }
        // Trailing bytes after the varint are not read.
        expect(readUvarint(bytes, offset, bytes.length, out)).toBe(value)
        expect(out.length).toBe(expected.length)
      }),
      { numRuns: 5000 },
    )
  })

  it('need at most MAX_VARINT_BYTES bytes', () => {
    expect(MAX_VARINT).toBe(Number.MAX_SAFE_INTEGER)
    expect(uvarintLength(MAX_VARINT)).toBe(MAX_VARINT_BYTES)
    expect(leb128(BigInt(MAX_VARINT))).toHaveLength(MAX_VARINT_BYTES)
  })

  it('reject a redundant trailing zero byte (non-canonical) with INVALID', () => {
    fc.assert(
      fc.property(arbUvarint, (value) => {
        const canonical = leb128(BigInt(value))
        const padded = [...canonical]
        padded[padded.length - 1]! |= 0x80
        padded.push(0)
        const error = decodeError(padded)
        // A padded 8-byte varint is 9 bytes long: too long before it is non-canonical.
        expect(error.code).toBe(canonical.length < MAX_VARINT_BYTES ? 'INVALID' : 'VARINT_OVERFLOW')
      }),
      { numRuns: 2000 },
    )
    expect(decodeError([0x80, 0x00]).code).toBe('INVALID')
    expect(decodeError([0xff, 0x80, 0x00]).code).toBe('INVALID')
    expect(decode([0x00])).toEqual({ value: 0, length: 1 })
  })

  it('reject values above 2^53 - 1 with VARINT_OVERFLOW', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 2n ** 53n, max: 2n ** 70n }), (value) => {
        expect(decodeError(leb128(value)).code).toBe('VARINT_OVERFLOW')
      }),
      { numRuns: 2000 },
    )
    expect(decodeError(leb128(2n ** 53n)).code).toBe('VARINT_OVERFLOW')
    expect(decode(leb128(2n ** 53n - 1n)).value).toBe(MAX_VARINT)
  })

  it('report any truncation as TRUNCATED', () => {
    fc.assert(
      fc.property(arbUvarint, fc.nat(), (value, cutSeed) => {
        const bytes = leb128(BigInt(value))
        const cut = cutSeed % bytes.length
        expect(decodeError(bytes.slice(0, cut)).code).toBe('TRUNCATED')
      }),
      { numRuns: 2000 },
    )
  })

  it('read only up to `end`, even when the array goes on', () => {
    const bytes = Uint8Array.from([0x80, 0x01])
    expect(() => readUvarint(bytes, 0, 1, { length: 0 })).toThrow(DecodeError)
    expect(readUvarint(bytes, 0, 2, { length: 0 })).toBe(128)
  })

  it('decode random bytes to a safe integer or a DecodeError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 12 }), (bytes) => {
        const out = { length: 0 }
        try {
          const value = readUvarint(bytes, 0, bytes.length, out)
          expect(Number.isSafeInteger(value) && value >= 0).toBe(true)
          // Whatever decodes is canonical: re-encoding gives back the same bytes.
          expect(leb128(BigInt(value))).toEqual(Array.from(bytes.subarray(0, out.length)))
        } catch (error) {
          expect(error).toBeInstanceOf(DecodeError)
        }
      }),
      { numRuns: 5000 },
    )
  })
})

describe('zigzag', () => {
  it('maps 0, -1, 1, -2, 2 to 0, 1, 2, 3, 4', () => {
    expect([0, -1, 1, -2, 2].map(zigzagEncode)).toEqual([0, 1, 2, 3, 4])
    expect([0, 1, 2, 3, 4].map(zigzagDecode)).toEqual([0, -1, 1, -2, 2])
  })

  it('round-trips every value a signed varint accepts, into the unsigned range', () => {
    const limit = Math.floor(MAX_VARINT / 2)
    fc.assert(
      fc.property(fc.integer({ min: -limit, max: limit }), (value) => {
        const encoded = zigzagEncode(value)
        expect(Number.isSafeInteger(encoded) && encoded >= 0 && encoded <= MAX_VARINT).toBe(true)
        expect(zigzagDecode(encoded)).toBe(value)
        expect(MessageBuffer.empty().pushVarint(value).popVarint()).toBe(value)
      }),
      { numRuns: 5000 },
    )
  })

  it('decodes every unsigned varint to a safe integer', () => {
    fc.assert(
      fc.property(fc.maxSafeNat(), (value) => {
        const decoded = zigzagDecode(value)
        expect(Number.isSafeInteger(decoded)).toBe(true)
        expect(zigzagEncode(decoded)).toBe(value)
      }),
      { numRuns: 2000 },
    )
  })
})
