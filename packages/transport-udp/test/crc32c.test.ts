import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { crc32c } from '../src/crc32c.js'

const ascii = (text: string) => new TextEncoder().encode(text)

/** Bit-at-a-time CRC32C straight from the definition, to check the sliced tables against. */
function reference(data: Uint8Array): number {
  let crc = 0xffffffff
  for (const byte of data) {
    crc ^= byte
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1
  }
  return (crc ^ 0xffffffff) >>> 0
}

describe('crc32c', () => {
  it('matches the standard check value', () => {
    expect(crc32c(ascii('123456789'))).toBe(0xe3069283)
  })

  it('matches the RFC 3720 (iSCSI) test vectors', () => {
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa)
    expect(crc32c(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43)
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i))).toBe(0x46dd794e)
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i))).toBe(0x113fdb5c)
  })

  it('is 0 for no bytes', () => {
    expect(crc32c(new Uint8Array(0))).toBe(0)
  })

  it('is not zlib CRC-32', () => {
    // CRC-32 (zip) of "123456789" is 0xCBF43926.
    expect(crc32c(ascii('123456789'))).not.toBe(0xcbf43926)
  })

  it('equals the bitwise reference on random data of every length and alignment', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(7), (data, skip) => {
        const start = Math.min(skip, data.length)
        expect(crc32c(data, start)).toBe(reference(data.subarray(start)))
      }),
      { numRuns: 500 },
    )
  })

  it('continues over pieces', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat(), (data, cut) => {
        const at = data.length === 0 ? 0 : cut % data.length
        expect(crc32c(data, at, data.length, crc32c(data, 0, at))).toBe(crc32c(data))
      }),
      { numRuns: 200 },
    )
  })
})
