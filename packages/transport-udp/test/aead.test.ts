/**
 * The AEAD mode (`encrypt: true`): bodies are unreadable on the wire, every header byte is
 * authenticated as associated data, truncated tags and other modes are refused, keys are per
 * sender, and nonces (epoch ‖ counter) never repeat over a long run with restarts.
 */
import { describe, expect, it } from 'vitest'
import { EPOCH_OFFSET, HEADER_BYTES, NEWEST_KEY_OFFSET } from '../src/codec.js'
import { aeadIntegrity } from '../src/integrity.js'
import { bundleDatagram } from './craft.js'
import { bytes, cluster, inbox, KEY } from './fakes.js'

const text = (s: string) => new TextEncoder().encode(s)
const decode = (b: Uint8Array) => new TextDecoder().decode(b)
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const drops = (stats: Record<string, number>) =>
  Object.fromEntries(Object.entries(stats).filter(([k, v]) => k.startsWith('drop.') && v > 0))

describe.each(['aes-256-gcm', 'chacha20-poly1305'] as const)('AEAD with %s', (cipher) => {
  it('delivers what was sent, and the wire shows none of it', () => {
    const c = cluster(['a', 'b'], { key: KEY, encrypt: true, cipher })
    const got = inbox(c.nodes.b!)
    const secret = 'attack at dawn, the password is hunter2'
    c.nodes.a!.send('b', text(secret))
    const big = bytes(20_000, 3)
    c.nodes.a!.send('b', big)
    c.settle()
    expect(got.map((m) => m.data.length)).toEqual([secret.length, big.length])
    expect(decode(got[0]!.data)).toBe(secret)
    expect(Buffer.compare(got[1]!.data, big)).toBe(0)
    const wire = Buffer.concat(c.network.log.map((d) => d.bytes))
    expect(wire.includes(Buffer.from('hunter2'))).toBe(false)
    expect(wire.includes(Buffer.from(big.subarray(5000, 5016)))).toBe(false)
    expect(drops(c.nodes.b!.stats())).toEqual({})
  })

  it('authenticates every header byte as associated data', () => {
    const c = cluster(['a', 'b'], { key: KEY, encrypt: true, cipher })
    const got = inbox(c.nodes.b!)
    c.nodes.a!.send('b', text('x'))
    c.turn.endTurn()
    const [original] = c.network.log.map((d) => d.bytes)
    c.network.lose()
    // The newest-key byte, the epoch and the counter are read before decryption; changing
    // any of them must fail the tag (the other header bytes fail earlier checks).
    for (let at = NEWEST_KEY_OFFSET; at < HEADER_BYTES; at++) {
      const copy = original!.slice()
      copy[at]! ^= 0x01
      c.sockets.b!.inject(copy, '10.0.0.1', 7001)
    }
    expect(got).toEqual([])
    expect(drops(c.nodes.b!.stats())).toEqual({ 'drop.badMac': HEADER_BYTES - NEWEST_KEY_OFFSET })
    c.sockets.b!.inject(original!, '10.0.0.1', 7001)
    expect(got.map((m) => decode(m.data))).toEqual(['x'])
  })
})

describe('AEAD mode boundaries', () => {
  it('refuses HMAC datagrams at an encrypting member and the reverse (authMismatch)', () => {
    const c = cluster(['a', 'b'], { key: KEY, encrypt: true })
    const got = inbox(c.nodes.b!)
    c.sockets.b!.inject(
      bundleDatagram([text('plain')], { key: KEY, sender: 'a' }),
      '10.0.0.1',
      7001,
    )
    const h = cluster(['a', 'b'], { key: KEY })
    const gotH = inbox(h.nodes.b!)
    h.sockets.b!.inject(
      bundleDatagram([text('sealed')], { key: KEY, encrypt: true, sender: 'a' }),
      '10.0.0.1',
      7001,
    )
    expect(got).toEqual([])
    expect(gotH).toEqual([])
    expect(drops(c.nodes.b!.stats())).toEqual({ 'drop.authMismatch': 1 })
    expect(drops(h.nodes.b!.stats())).toEqual({ 'drop.authMismatch': 1 })
  })

  it('derives a key per sender: the same nonce and text seal differently for a and b', () => {
    const integrity = aeadIntegrity(KEY)
    const make = (senderId: number) => {
      const d = new Uint8Array(HEADER_BYTES + 10 + 16)
      d.fill(7, EPOCH_OFFSET, HEADER_BYTES)
      d.set(text('same text!'), HEADER_BYTES)
      integrity.seal(d, HEADER_BYTES + 10, senderId)
      return d
    }
    const a = make(1)
    const b = make(2)
    expect(hex(a.subarray(HEADER_BYTES))).not.toBe(hex(b.subarray(HEADER_BYTES)))
    expect(integrity.open(a.slice(), 2)).toBe(false) // b's key does not open a's datagram
    const opened = a.slice()
    expect(integrity.open(opened, 1)).toBe(true)
    expect(decode(opened.subarray(HEADER_BYTES, HEADER_BYTES + 10))).toBe('same text!')
  })

  it('never repeats a nonce over a long run with restarts', () => {
    const c = cluster(
      ['a', 'b'],
      { key: KEY, encrypt: true, maxDatagram: 200 },
      {
        epochs: { a: 10 },
      },
    )
    const nonces = new Set<string>()
    let datagrams = 0
    for (const epoch of [10, 11, 12, 20]) {
      if (epoch !== 10) c.restart('a', epoch)
      for (let round = 0; round < 100; round++) {
        for (let i = 0; i < 20; i++) c.nodes.a!.send('b', bytes(60 + ((i * 13) % 90), i + round))
        if (round % 10 === 0) c.nodes.a!.send('b', bytes(3000, round))
        c.settle()
      }
      for (const d of c.network.log.splice(0)) {
        if (d.port !== 7002) continue
        nonces.add(hex(d.bytes.subarray(EPOCH_OFFSET, HEADER_BYTES)))
        datagrams++
      }
    }
    expect(datagrams).toBeGreaterThan(7000)
    expect(nonces.size).toBe(datagrams)
    expect(drops(c.nodes.b!.stats())).toEqual({})
  })
})
