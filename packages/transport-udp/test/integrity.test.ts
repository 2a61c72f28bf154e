import { createHmac } from 'node:crypto'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { checkMac, MAC_BYTES, macKey, macOf } from '../src/adapters/hmac.js'
import { crcIntegrity, hmacIntegrity, integrityFor } from '../src/integrity.js'

const hex = (data: Uint8Array) => Buffer.from(data).toString('hex')
const ascii = (text: string) => new TextEncoder().encode(text)

describe('truncated HMAC-SHA-256', () => {
  it('is the first 16 bytes of RFC 4231 test case 2', () => {
    const tag = macOf(macKey(ascii('Jefe')), ascii('what do ya want for nothing?'))
    expect(tag.length).toBe(MAC_BYTES)
    expect(hex(tag)).toBe('5bdcc146bf60754e6a042426089575c7')
  })

  it('is the first 16 bytes of the RFC 4231 test case 5 HMAC (which shows truncation)', () => {
    const key = new Uint8Array(20).fill(0x0c)
    // RFC 4231 §4.6 gives exactly this 128-bit truncation.
    expect(hex(macOf(macKey(key), ascii('Test With Truncation')))).toBe(
      'a3b6167473100ee06e0c796c2955552b',
    )
  })

  it('equals the prefix of node:crypto HMAC for any key and data', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 16, maxLength: 80 }),
        fc.uint8Array({ maxLength: 200 }),
        (key, data) => {
          const full = createHmac('sha256', key).update(data).digest()
          expect(hex(macOf(macKey(key), data))).toBe(full.subarray(0, 16).toString('hex'))
        },
      ),
      { numRuns: 100 },
    )
  })

  it('rejects a changed byte anywhere, a short input and another key', () => {
    const key = macKey(new Uint8Array(32).fill(9))
    const data = ascii('a datagram body')
    const signed = new Uint8Array([...data, ...macOf(key, data)])
    expect(checkMac(key, signed)).toBe(true)
    for (let i = 0; i < signed.length; i++) {
      const copy = signed.slice()
      copy[i]! ^= 0x10
      expect(checkMac(key, copy)).toBe(false)
    }
    expect(checkMac(key, signed.subarray(0, 10))).toBe(false)
    expect(checkMac(macKey(new Uint8Array(32).fill(8)), signed)).toBe(false)
  })
})

describe('integrity modes', () => {
  it('seals and checks with HMAC when a key is given, CRC32C without', () => {
    const keyed = integrityFor(new Uint8Array(16).fill(1))
    const plain = integrityFor(undefined)
    expect(keyed.authenticated).toBe(true)
    expect(keyed.trailerBytes).toBe(16)
    expect(plain).toBe(crcIntegrity)
    expect(plain.trailerBytes).toBe(4)
    for (const integrity of [keyed, plain]) {
      const buf = new Uint8Array(40 + integrity.trailerBytes)
      buf.set(ascii('some bytes to protect, forty of them....'))
      buf[12] = 0 // the key id: the one key is id 0
      integrity.seal(buf, 40, 1)
      expect(integrity.open(buf, 1)).toBe(true)
      buf[3]! ^= 1
      expect(integrity.open(buf, 1)).toBe(false)
    }
  })

  it('CRC32C writes the checksum big-endian after the data', () => {
    const buf = new Uint8Array(9 + 4)
    buf.set(ascii('123456789'))
    crcIntegrity.seal(buf, 9, 0)
    expect(hex(buf.subarray(9))).toBe('e3069283')
  })

  it('does not accept a CRC datagram as authenticated', () => {
    const keyed = hmacIntegrity(new Uint8Array(32).fill(3))
    const buf = new Uint8Array(20 + 4)
    crcIntegrity.seal(buf, 20, 0)
    expect(keyed.open(buf, 0)).toBe(false)
  })
})
