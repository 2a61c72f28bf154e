/**
 * Replay protection through the transport core on a fake network: every datagram of a real
 * run replayed (each dropped and counted), reordering within and beyond the window, loss,
 * restarts with a higher epoch (accepted, the old incarnation refused) and a lower one
 * (refused with a logged reason), forgeries that must not move the window, and the
 * counter's end.
 */
import { createLogger, memorySink } from '@consul/xkernel'
import { describe, expect, it } from 'vitest'
import { MAX_U48 } from '../src/codec.js'
import { bundleDatagram } from './craft.js'
import { bytes, cluster, inbox, KEY } from './fakes.js'

const text = (s: string) => new TextEncoder().encode(s)
const decode = (b: Uint8Array) => new TextDecoder().decode(b)
const drops = (stats: Record<string, number>) =>
  Object.fromEntries(Object.entries(stats).filter(([k, v]) => k.startsWith('drop.') && v > 0))

const MODES = [
  { name: 'HMAC', options: { key: KEY } },
  { name: 'AEAD', options: { key: KEY, encrypt: true } },
  { name: 'CRC32C', options: {} },
] as const

/** A run of `a` sending to `b`: small messages in bundles and large ones in fragments. */
function run(c: ReturnType<typeof cluster>, rounds = 20) {
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < 30; i++) c.nodes.a!.send('b', text(`r${r} m${i}`))
    if (r % 5 === 0) c.nodes.a!.send('b', bytes(5000, r + 1))
    c.settle()
  }
}

describe.each(MODES)('replay protection ($name)', ({ options }) => {
  it('drops and counts a replay of every datagram of a real run', () => {
    const c = cluster(['a', 'b'], options)
    const got = inbox(c.nodes.b!)
    run(c)
    const delivered = got.length
    const recorded = c.network.log.filter((d) => d.port === 7002).map((d) => d.bytes)
    expect(recorded.length).toBeGreaterThan(30)
    expect(drops(c.nodes.b!.stats())).toEqual({})
    for (const d of recorded) c.sockets.b!.inject(d.slice(), '10.0.0.1', 7001)
    expect(got.length).toBe(delivered)
    expect(drops(c.nodes.b!.stats())).toEqual({ 'drop.replayed': recorded.length })
    // And a second time, out of order.
    for (const d of [...recorded].reverse()) c.sockets.b!.inject(d.slice(), '10.0.0.1', 7001)
    expect(got.length).toBe(delivered)
    expect(c.nodes.b!.stats()['drop.replayed']).toBe(2 * recorded.length)
  })

  it('delivers datagrams reordered within the window once, and refuses those beyond it', () => {
    const c = cluster(['a', 'b'], { ...options, replayWindow: 64 })
    const got = inbox(c.nodes.b!)
    const wire: Uint8Array[] = []
    for (let i = 0; i < 200; i++) {
      c.nodes.a!.send('b', text(`m${i}`))
      c.turn.endTurn() // one datagram each
      wire.push(...c.network.log.splice(0).map((d) => d.bytes))
      c.network.lose()
    }
    expect(wire).toHaveLength(200)
    // Counters 1..200. Deliver 151..200 first, then 150..1 late: those within 64 of 200
    // (137..150) are accepted, 1..136 are too old; then everything again.
    const order = [...wire.slice(150), ...wire.slice(0, 150).reverse()]
    for (const d of order) c.sockets.b!.inject(d.slice(), '10.0.0.1', 7001)
    for (const d of wire) c.sockets.b!.inject(d.slice(), '10.0.0.1', 7001)
    const numbers = got.map((m) => Number(decode(m.data).slice(1)))
    expect(numbers.length).toBe(50 + 14)
    expect(new Set(numbers).size).toBe(numbers.length)
    expect(Math.min(...numbers)).toBe(136) // message m136 went with counter 137
    const stats = c.nodes.b!.stats()
    expect(stats['drop.replayTooOld']).toBe(136 + 136)
    expect(stats['drop.replayed']).toBe(200 - 136)
  })

  it('keeps working across loss: a gap never blocks later datagrams', () => {
    const c = cluster(['a', 'b'], options)
    const got = inbox(c.nodes.b!)
    for (let i = 0; i < 50; i++) {
      c.nodes.a!.send('b', text(`m${i}`))
      c.turn.endTurn()
      if (i % 3 === 0) c.network.lose()
      else c.network.deliver()
    }
    expect(got).toHaveLength(50 - 17)
    expect(drops(c.nodes.b!.stats())).toEqual({})
  })

  it('accepts a restarted member with a higher epoch and refuses its old incarnation', () => {
    const c = cluster(['a', 'b'], options, { epochs: { a: 100 } })
    const got = inbox(c.nodes.b!)
    run(c, 3)
    const old = c.network.log.filter((d) => d.port === 7002).map((d) => d.bytes)
    c.network.log.length = 0
    const delivered = got.length
    c.restart('a', 200)
    c.nodes.a!.send('b', text('after restart'))
    c.settle()
    expect(got.length).toBe(delivered + 1)
    expect(decode(got.at(-1)!.data)).toBe('after restart')
    expect(c.nodes.b!.stats()['peer.restarts']).toBe(1)
    for (const d of old) c.sockets.b!.inject(d.slice(), '10.0.0.1', 7001)
    expect(got.length).toBe(delivered + 1)
    expect(drops(c.nodes.b!.stats())).toEqual({ 'drop.staleEpoch': old.length })
    // The new incarnation is unaffected.
    c.nodes.a!.send('b', text('still here'))
    c.settle()
    expect(decode(got.at(-1)!.data)).toBe('still here')
  })

  it('refuses a member restarted with a lower epoch, with a logged reason', () => {
    const sink = memorySink()
    const logger = createLogger({ level: 'warn', sink })
    const c = cluster(['a', 'b'], { ...options, logger }, { epochs: { a: 500 } })
    const got = inbox(c.nodes.b!)
    c.nodes.a!.send('b', text('first'))
    c.settle()
    c.restart('a', 400) // its clock stepped back
    for (let i = 0; i < 5; i++) c.nodes.a!.send('b', text(`lost ${i}`))
    c.settle()
    expect(got.map((m) => decode(m.data))).toEqual(['first'])
    expect(c.nodes.b!.stats()['drop.staleEpoch']).toBe(1)
    const warnings = sink.records.filter((r) => r.level === 'warn')
    expect(warnings).toHaveLength(1)
    expect(warnings[0]!.fields).toMatchObject({ from: 'a', epoch: 400, seen: 500 })
    expect(String(warnings[0]!.fields?.reason)).toMatch(/restart it with an epoch above/)
    // Rate-limited: more stale datagrams within 10 s log nothing more; later ones do.
    c.nodes.a!.send('b', text('again'))
    c.settle()
    expect(sink.records.filter((r) => r.level === 'warn')).toHaveLength(1)
    c.clock.advance(10_000)
    c.nodes.a!.send('b', text('later'))
    c.settle()
    expect(sink.records.filter((r) => r.level === 'warn')).toHaveLength(2)
  })
})

describe('replay protection against forgeries', () => {
  it('a forged datagram with a huge counter or epoch does not move the window', () => {
    const c = cluster(['a', 'b'], { key: KEY })
    const got = inbox(c.nodes.b!)
    c.nodes.a!.send('b', text('one'))
    c.settle()
    const forger = { key: new Uint8Array(32).fill(9), sender: 'a' }
    c.sockets.b!.inject(
      bundleDatagram([text('x')], { ...forger, counter: MAX_U48 }),
      '10.0.0.1',
      7001,
    )
    c.sockets.b!.inject(
      bundleDatagram([text('x')], { ...forger, epoch: MAX_U48 }),
      '10.0.0.1',
      7001,
    )
    c.nodes.a!.send('b', text('two'))
    c.settle()
    expect(got.map((m) => decode(m.data))).toEqual(['one', 'two'])
    expect(drops(c.nodes.b!.stats())).toEqual({ 'drop.badMac': 2 })
  })

  it('no log at warn for forged stale epochs (the trailer is checked before reporting)', () => {
    const sink = memorySink()
    const c = cluster(
      ['a', 'b'],
      { key: KEY, logger: createLogger({ level: 'warn', sink }) },
      {
        epochs: { a: 50 },
      },
    )
    c.nodes.a!.send('b', text('one'))
    c.settle()
    const forged = bundleDatagram([text('x')], { key: new Uint8Array(32), sender: 'a', epoch: 3 })
    c.sockets.b!.inject(forged, '10.0.0.1', 7001)
    expect(c.nodes.b!.stats()['drop.staleEpoch']).toBe(1)
    expect(sink.records).toEqual([])
  })

  it('with replayWindow 0 a replay is delivered again (measurements only)', () => {
    const c = cluster(['a', 'b'], { key: KEY, replayWindow: 0 })
    const got = inbox(c.nodes.b!)
    c.nodes.a!.send('b', text('again'))
    c.settle()
    c.sockets.b!.inject(c.network.log[0]!.bytes.slice(), '10.0.0.1', 7001)
    expect(got.map((m) => decode(m.data))).toEqual(['again', 'again'])
  })
})

describe('the datagram counter', () => {
  it('never wraps: at 2^48 - 1 messages are dropped and counted', () => {
    const c = cluster(['a', 'b'], { key: KEY }, { firstCounter: MAX_U48 - 1 })
    const got = inbox(c.nodes.b!)
    c.nodes.a!.send('b', text('last but one'))
    c.turn.endTurn()
    c.nodes.a!.send('b', text('last'))
    c.turn.endTurn()
    c.nodes.a!.send('b', text('too many'))
    c.nodes.a!.send('b', bytes(5000))
    c.settle()
    expect(got.map((m) => decode(m.data))).toEqual(['last but one', 'last'])
    expect(c.nodes.a!.stats()['drop.counterExhausted']).toBe(2)
  })
})
