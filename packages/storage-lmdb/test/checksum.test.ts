import { crc32 as zlibCrc32 } from 'node:zlib'
import { describe, expect, it } from 'vitest'
import { CRC32C_INIT, crc32c, crc32cFinish, crc32cUpdate } from '../src/checksum.js'
import {
  encodeRecord,
  RECORD_FORMAT,
  RECORD_FORMAT_CRC32C,
  RECORD_HEADER_BYTES,
  recordDamage,
  recordValue,
} from '../src/record.js'

const utf8 = (s: string) => new TextEncoder().encode(s)

/** Bit-at-a-time CRC32C: the definition, to check the table-driven one against. */
function referenceCrc32c(data: Uint8Array): number {
  let c = 0xffffffff
  for (const byte of data) {
    c ^= byte
    for (let i = 0; i < 8; i++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1
  }
  return (c ^ 0xffffffff) >>> 0
}

describe('crc32c', () => {
  it('matches the published check values', () => {
    expect(crc32c(utf8('123456789'))).toBe(0xe3069283)
    expect(crc32c(new Uint8Array(0))).toBe(0)
    // RFC 3720 (iSCSI) appendix B.4 vectors.
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa)
    expect(crc32c(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43)
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i))).toBe(0x46dd794e)
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i))).toBe(0x113fdb5c)
  })

  it('agrees with the bitwise definition at every length and alignment', () => {
    const data = Uint8Array.from({ length: 300 }, (_, i) => (i * 73 + 11) & 0xff)
    for (let start = 0; start < 9; start++) {
      for (let end = start; end <= data.length; end += 7) {
        const slice = data.subarray(start, end)
        expect(crc32c(slice)).toBe(referenceCrc32c(slice))
      }
    }
  })

  it('chains: updating with a then b equals the checksum of a ‖ b', () => {
    const a = utf8('log/00000042')
    const b = utf8('a value that follows the key')
    const joined = new Uint8Array([...a, ...b])
    expect(crc32cFinish(crc32cUpdate(crc32cUpdate(CRC32C_INIT, a), b))).toBe(crc32c(joined))
  })
})

describe('record format', () => {
  const key = utf8('n/0007/a')
  const value = utf8('hello, stable storage')

  it('is a format byte (2), a little-endian CRC-32 of key ‖ value, then the value', () => {
    const record = encodeRecord(key, value)
    expect(record.length).toBe(RECORD_HEADER_BYTES + value.length)
    expect(record[0]).toBe(RECORD_FORMAT)
    expect(RECORD_FORMAT).toBe(2)
    const stored = new DataView(record.buffer, record.byteOffset).getUint32(1, true)
    expect(stored).toBe(zlibCrc32(new Uint8Array([...key, ...value])))
    // The IEEE check value: the standard CRC-32, not CRC32C.
    expect(zlibCrc32(utf8('123456789'))).toBe(0xcbf43926)
    expect(recordDamage(key, record)).toBeUndefined()
    expect(recordValue(record)).toEqual(value)
  })

  it('still reads format 1 (CRC32C, written by earlier releases), and refuses a damaged one', () => {
    const body = new Uint8Array([...key, ...value])
    const old = new Uint8Array(RECORD_HEADER_BYTES + value.length)
    old[0] = RECORD_FORMAT_CRC32C
    new DataView(old.buffer).setUint32(1, crc32c(body), true)
    old.set(value, RECORD_HEADER_BYTES)
    expect(recordDamage(key, old)).toBeUndefined()
    expect(recordValue(old)).toEqual(value)
    const bad = old.slice()
    bad[RECORD_HEADER_BYTES] = bad[RECORD_HEADER_BYTES]! ^ 1
    expect(recordDamage(key, bad)).toMatch(/CRC32C/)
    const unknown = old.slice()
    unknown[0] = 3
    expect(recordDamage(key, unknown)).toMatch(/unknown record format 3/)
  })

  it('hands out a plain Uint8Array copy of the value', () => {
    const record = encodeRecord(key, value)
    const out = recordValue(record)
    expect(out.constructor).toBe(Uint8Array)
    out[0] = 0
    expect(recordValue(record)).toEqual(value)
  })

  it('round-trips an empty value', () => {
    const record = encodeRecord(key, new Uint8Array(0))
    expect(recordDamage(key, record)).toBeUndefined()
    expect(recordValue(record)).toEqual(new Uint8Array(0))
  })

  it('detects every single-bit flip anywhere in the record', () => {
    const record = encodeRecord(key, value)
    for (let byte = 0; byte < record.length; byte++) {
      for (let bit = 0; bit < 8; bit++) {
        const damaged = Uint8Array.from(record)
        damaged[byte]! ^= 1 << bit
        expect(recordDamage(key, damaged), `byte ${byte} bit ${bit}`).toMatch(
          byte === 0 ? /unknown record format/ : /checksum mismatch/,
        )
      }
    }
  })

  it('detects a truncated (torn) record', () => {
    const record = encodeRecord(key, value)
    expect(recordDamage(key, record.subarray(0, 3))).toMatch(/torn write/)
    expect(recordDamage(key, record.subarray(0, record.length - 1))).toMatch(/checksum mismatch/)
  })

  it('detects a record filed under the wrong key', () => {
    const record = encodeRecord(key, value)
    expect(recordDamage(utf8('n/0007/b'), record)).toMatch(/checksum mismatch/)
  })
})
