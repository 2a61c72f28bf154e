import { describe, expect, it } from 'vitest'
import { readKeyring, UdpTransportError } from '../src/index.js'

const bytes = (text: string) => new TextEncoder().encode(text)
const a = '0a'.repeat(32)
const b = '0b'.repeat(16)
const hex = (k: Uint8Array) => Buffer.from(k).toString('hex')

describe('readKeyring (the applications’ key file)', () => {
  it('a single key, hex or raw, is the keyring of id 0', () => {
    const [one] = readKeyring(bytes(`  ${a}\n`))
    expect(one!.id).toBe(0)
    expect(hex(one!.key)).toBe(a)
    const raw = new Uint8Array(20).fill(7)
    expect(readKeyring(raw)).toEqual([{ id: 0, key: raw }])
  })

  it('<id>:<hex> lines are a keyring, sorted by id; comments and blank lines skipped', () => {
    const ring = readKeyring(bytes(`# rotating to 1\n7:${b}\n\n 1:${a} \r\n`))
    expect(ring.map((k) => k.id)).toEqual([1, 7])
    expect(hex(ring[1]!.key)).toBe(b)
  })

  it('names the line that is wrong, and refuses short keys and non-bytes', () => {
    const bad = (text: string) => () => readKeyring(bytes(text))
    expect(bad(`0:${a}\nnope`)).toThrow(/key file line 2: not <id>:<hex key>/)
    expect(bad(`256:${a}`)).toThrow(/line 1: key id 256 is over 255/)
    expect(bad(`3:${'ab'.repeat(15)}`)).toThrow(/line 1: the key must be at least 16 bytes/)
    expect(bad(`1:${a}\n1:${b}`)).toThrow(/line 2: key id 1 appears twice/)
    expect(bad('short')).toThrow(/at least 16 bytes/)
    expect(() => readKeyring('text' as never)).toThrow(UdpTransportError)
    let thrown: unknown
    try {
      readKeyring(bytes(`0:${a}\nx`))
    } catch (error) {
      thrown = error
    }
    expect(thrown).toMatchObject({ code: 'INVALID_KEY' })
  })
})
