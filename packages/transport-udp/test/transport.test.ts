import { createLogger, memorySink } from '@consul/xkernel'
import { describe, expect, it } from 'vitest'
import { HEADER_BYTES, MAGIC_0 } from '../src/codec.js'
import { UdpTransportError } from '../src/errors.js'
import { bundleDatagram, fragmentDatagram, sealBody } from './craft.js'
import { bytes, cluster, inbox, KEY } from './fakes.js'

const text = (s: string) => new TextEncoder().encode(s)
const decode = (b: Uint8Array) => new TextDecoder().decode(b)
const drops = (stats: Record<string, number>) =>
  Object.fromEntries(Object.entries(stats).filter(([k, v]) => k.startsWith('drop.') && v > 0))

describe('UDP transport core (fake network)', () => {
  it('delivers both ways and names the sender by member id', () => {
    const c = cluster(['a', 'b'], { key: KEY })
    const atA = inbox(c.nodes.a!)
    const atB = inbox(c.nodes.b!)
    expect(c.nodes.a!.self).toBe('a')
    expect(c.nodes.a!.peers()).toEqual(['b'])
    c.nodes.a!.send('b', text('ping'))
    c.nodes.b!.send('a', text('pong'))
    c.settle()
    expect(atB.map((m) => [m.from, decode(m.data)])).toEqual([['a', 'ping']])
    expect(atA.map((m) => [m.from, decode(m.data)])).toEqual([['b', 'pong']])
  })

  it('bundles the messages of one turn to one peer into one datagram, in order', () => {
    const c = cluster(['a', 'b'], { key: KEY })
    const got = inbox(c.nodes.b!)
    for (let i = 0; i < 20; i++) c.nodes.a!.send('b', text(`m${i}`))
    expect(c.network.log).toHaveLength(0) // nothing before the end of the turn
    c.settle()
    expect(c.network.log).toHaveLength(1)
    expect(got.map((m) => decode(m.data))).toEqual(Array.from({ length: 20 }, (_, i) => `m${i}`))
    expect(c.nodes.a!.stats()).toMatchObject({ 'sent.messages': 20, 'sent.datagrams': 1 })
    expect(c.nodes.b!.stats()).toMatchObject({ 'received.messages': 20, 'received.datagrams': 1 })
  })

  it('sends a full bundle at once and keeps datagrams within maxDatagram', () => {
    const c = cluster(['a', 'b'], { key: KEY, maxDatagram: 200 })
    const got = inbox(c.nodes.b!)
    for (let i = 0; i < 10; i++) c.nodes.a!.send('b', bytes(50, i + 1))
    // 200 - 26 header - 16 MAC = 158 bytes of body: three 52-byte entries per datagram.
    expect(c.network.log).toHaveLength(3)
    c.settle()
    expect(c.network.log).toHaveLength(4)
    expect(c.network.log.every((d) => d.bytes.length <= 200)).toBe(true)
    expect(got.map((m) => m.data)).toEqual(Array.from({ length: 10 }, (_, i) => bytes(50, i + 1)))
  })

  it('with bundleMs waits on the clock, not for the end of the turn', () => {
    const c = cluster(['a', 'b'], { bundleMs: 5 })
    const got = inbox(c.nodes.b!)
    c.nodes.a!.send('b', text('x'))
    c.turn.endTurn()
    expect(c.network.log).toHaveLength(0)
    c.clock.advance(4)
    c.nodes.a!.send('b', text('y'))
    expect(c.network.log).toHaveLength(0)
    c.clock.advance(1)
    expect(c.network.log).toHaveLength(1)
    c.network.deliver()
    expect(got.map((m) => decode(m.data))).toEqual(['x', 'y'])
  })

  it('broadcasts one copy to every peer', () => {
    const c = cluster(['a', 'b', 'c'])
    const atB = inbox(c.nodes.b!)
    const atC = inbox(c.nodes.c!)
    c.nodes.a!.broadcast(text('all'))
    c.settle()
    expect(atB.map((m) => [m.from, decode(m.data)])).toEqual([['a', 'all']])
    expect(atC.map((m) => [m.from, decode(m.data)])).toEqual([['a', 'all']])
  })

  it('fragments a large message, reassembles it, and keeps it behind earlier small messages', () => {
    const c = cluster(['a', 'b'], { key: KEY })
    const got = inbox(c.nodes.b!)
    const big = bytes(100 * 1024, 9)
    c.nodes.a!.send('b', text('before'))
    c.nodes.a!.send('b', big)
    c.nodes.a!.send('b', text('after'))
    c.settle()
    // 1400 - 26 - 12 - 16 = 1346 bytes per fragment.
    const fragments = Math.ceil(big.length / 1346)
    expect(c.nodes.a!.stats()['sent.fragments']).toBe(fragments)
    expect(c.network.log).toHaveLength(fragments + 2)
    expect(got.map((m) => m.data.length)).toEqual([6, big.length, 5])
    expect(Buffer.compare(got[1]!.data, big)).toBe(0)
    expect(c.nodes.b!.stats()).toMatchObject({
      'received.fragments': fragments,
      'received.reassembled': 1,
      'reassembly.partials': 0,
      'reassembly.bytes': 0,
    })
  })

  it('reassembles fragments that arrive in any order', () => {
    const c = cluster(['a', 'b'])
    const got = inbox(c.nodes.b!)
    const big = bytes(10_000, 4)
    c.nodes.a!.send('b', big)
    c.turn.endTurn()
    const wire = c.network.log.slice()
    c.network.lose()
    for (const i of [3, 7, 0, 5, 1, 6, 2, 4]) c.sockets.b!.inject(wire[i]!.bytes, '10.0.0.1', 7001)
    expect(got).toHaveLength(1)
    expect(got[0]!.data).toEqual(big)
  })

  it('times out a message whose fragment was lost', () => {
    const c = cluster(['a', 'b'], { reassembly: { timeoutMs: 200, maxBytes: 1 << 20 } })
    const got = inbox(c.nodes.b!)
    c.nodes.a!.send('b', bytes(5000))
    c.turn.endTurn()
    const wire = c.network.log.slice(1)
    c.network.lose()
    for (const d of wire) c.sockets.b!.inject(d.bytes, '10.0.0.1', 7001)
    expect(c.nodes.b!.stats()['reassembly.partials']).toBe(1)
    c.clock.advance(200)
    expect(got).toHaveLength(0)
    expect(c.nodes.b!.stats()).toMatchObject({
      'drop.reassemblyTimeout': 1,
      'reassembly.partials': 0,
      'reassembly.bytes': 0,
    })
  })

  it('hands the handler plain Uint8Arrays the sender can no longer change', () => {
    const c = cluster(['a', 'b'])
    let received: Uint8Array | undefined
    c.nodes.b!.onReceive((_, data) => {
      received = data
    })
    const data = text('original')
    c.nodes.a!.send('b', data)
    data.fill(0)
    c.settle()
    expect(received?.constructor).toBe(Uint8Array)
    expect(decode(received!)).toBe('original')
  })

  it('throws at the API edge for an unknown member, bad data or a message too large', () => {
    const c = cluster(['a', 'b'], { reassembly: { maxBytes: 10_000, timeoutMs: 1000 } })
    const a = c.nodes.a!
    expect(() => a.send('zed', text('x'))).toThrow(TypeError)
    expect(() => a.send('zed', text('x'))).toThrow(/unknown member "zed".*knows "b"/)
    expect(() => a.send('a', text('x'))).toThrow(TypeError)
    expect(() => a.send('a', text('x'))).toThrow(/a cannot send to itself/)
    expect(() => a.send('b', 'text' as unknown as Uint8Array)).toThrow(TypeError)
    expect(() => a.broadcast(null as unknown as Uint8Array)).toThrow(TypeError)
    let caught: unknown
    try {
      a.send('b', new Uint8Array(20_000))
    } catch (error) {
      caught = error
    }
    expect(caught).toBeInstanceOf(UdpTransportError)
    expect((caught as UdpTransportError).code).toBe('MESSAGE_TOO_LARGE')
    expect((caught as Error).message).toMatch(/reassembly.maxBytes \(10000\)/)
    expect(() => a.onReceive(undefined as never)).toThrow(TypeError)
  })

  it('drops and counts messages when the send queue is full, and recovers', () => {
    const c = cluster(['a', 'b'], { maxSendQueue: 2, maxDatagram: 100 })
    const got = inbox(c.nodes.b!)
    c.sockets.a!.holdCompletions = true
    for (let i = 0; i < 10; i++) c.nodes.a!.send('b', bytes(60, i + 1))
    c.settle()
    expect(c.nodes.a!.stats()).toMatchObject({ 'drop.sendQueueFull': 8, 'send.queued': 2 })
    expect(got).toHaveLength(2)
    // A fragmented message that needs more datagrams than are free is refused whole.
    expect(() => c.nodes.a!.send('b', bytes(150))).toThrow(/maxSendQueue \(2 datagrams\)/)
    c.sockets.a!.complete()
    expect(c.nodes.a!.stats()['send.queued']).toBe(0)
    c.nodes.a!.send('b', bytes(100, 77))
    c.settle()
    expect(got.at(-1)?.data).toEqual(bytes(100, 77))
  })

  it('counts send errors by code and goes on', () => {
    const c = cluster(['a', 'b'])
    const got = inbox(c.nodes.b!)
    c.sockets.a!.failWith = Object.assign(new Error('send EAGAIN'), { code: 'EAGAIN' })
    c.nodes.a!.send('b', text('lost'))
    c.settle()
    c.sockets.a!.failWith = new Error('odd')
    c.nodes.a!.send('b', text('lost too'))
    c.settle()
    c.sockets.a!.failWith = undefined
    c.nodes.a!.send('b', text('kept'))
    c.settle()
    expect(got.map((m) => decode(m.data))).toEqual(['kept'])
    expect(c.nodes.a!.stats()).toMatchObject({
      'send.errors': 2,
      'send.error.EAGAIN': 1,
      'send.error.unknown': 1,
      'send.queued': 0,
    })
  })

  it('counts socket errors', () => {
    const c = cluster(['a', 'b'])
    c.sockets.a!.emitError(new Error('boom'))
    expect(c.nodes.a!.stats()['socket.errors']).toBe(1)
  })

  it('keeps delivering a bundle when the handler throws, and counts it', () => {
    const sink = memorySink()
    const c = cluster(['a', 'b'], { logger: createLogger({ level: 'debug', sink }) })
    const got: string[] = []
    c.nodes.b!.onReceive((_, data) => {
      const s = decode(data)
      if (s === 'bad') throw new Error('handler bug')
      got.push(s)
    })
    for (const s of ['one', 'bad', 'two']) c.nodes.a!.send('b', text(s))
    c.settle()
    expect(got).toEqual(['one', 'two'])
    expect(c.nodes.b!.stats()['handler.errors']).toBe(1)
    expect(sink.records).toContainEqual(
      expect.objectContaining({
        level: 'error',
        msg: 'receive handler threw',
        host: 'b',
        fields: { from: 'a', error: 'handler bug' },
      }),
    )
  })

  it('counts messages that arrive before a handler is set', () => {
    const c = cluster(['a', 'b'])
    c.nodes.a!.send('b', text('early'))
    c.settle()
    expect(c.nodes.b!.stats()).toMatchObject({ 'received.unhandled': 1, 'received.messages': 0 })
  })

  it('flushes open bundles on close, then ignores sends (counted) and is idempotent', async () => {
    const c = cluster(['a', 'b'])
    const got = inbox(c.nodes.b!)
    c.nodes.a!.send('b', text('last words'))
    const closing = c.nodes.a!.close()
    expect(c.nodes.a!.close()).toBe(closing)
    await closing
    expect(c.sockets.a!.closed).toBe(true)
    c.nodes.a!.send('b', text('too late'))
    c.nodes.a!.broadcast(text('too late'))
    expect(c.nodes.a!.stats()['drop.closed']).toBe(2)
    c.settle()
    expect(got.map((m) => decode(m.data))).toEqual(['last words'])
    expect(c.clock.pending).toBe(0)
  })
})

describe('UDP transport core: bad input is dropped and counted by reason', () => {
  const setup = (extra = {}) => {
    const c = cluster(['a', 'b'], { key: KEY, groupId: 7, ...extra })
    const got = inbox(c.nodes.b!)
    const fromA = (d: Uint8Array, port = 7001, address = '10.0.0.1') =>
      c.sockets.b!.inject(d, address, port)
    return { c, got, fromA, b: c.nodes.b! }
  }
  const valid = { key: KEY, groupId: 7, sender: 'a' }

  it('accepts a hand-built valid datagram (the baseline for the cases below)', () => {
    const { got, fromA } = setup()
    fromA(bundleDatagram([text('hi')], valid))
    expect(got.map((m) => decode(m.data))).toEqual(['hi'])
  })

  it('drops envelope failures', () => {
    const { got, fromA, b } = setup()
    const good = bundleDatagram([text('hi')], valid)
    const flip = (at: number, mask = 0xff) => {
      const d = good.slice()
      d[at]! ^= mask
      return d
    }
    fromA(new Uint8Array(0))
    fromA(good.subarray(0, 5))
    fromA(flip(0))
    fromA(flip(2))
    fromA(flip(3, 0x80))
    fromA(bundleDatagram([text('hi')], { ...valid, key: undefined }))
    fromA(bundleDatagram([text('hi')], { ...valid, groupId: 8 }))
    fromA(new Uint8Array(1401).fill(MAGIC_0))
    expect(got).toHaveLength(0)
    expect(drops(b.stats())).toEqual({
      'drop.truncated': 2,
      'drop.badMagic': 1,
      'drop.badVersion': 1,
      'drop.badFlags': 1,
      'drop.authMismatch': 1,
      'drop.foreignGroup': 1,
      'drop.oversize': 1,
    })
  })

  it('drops unknown senders, its own id, the wrong source address, and bad MACs', () => {
    const { got, fromA, b } = setup()
    fromA(bundleDatagram([text('x')], { ...valid, sender: 'mallory' }))
    fromA(bundleDatagram([text('x')], { ...valid, sender: 'b' }))
    fromA(bundleDatagram([text('x')], valid), 7009)
    fromA(bundleDatagram([text('x')], valid), 7001, '10.0.0.2')
    fromA(bundleDatagram([text('x')], { ...valid, key: new Uint8Array(32).fill(1) }))
    const tampered = bundleDatagram([text('x')], valid)
    tampered[HEADER_BYTES + 2]! ^= 1
    fromA(tampered)
    expect(got).toHaveLength(0)
    expect(drops(b.stats())).toEqual({
      'drop.unknownSender': 1,
      'drop.ownDatagram': 1,
      'drop.addressMismatch': 2,
      'drop.badMac': 2,
    })
  })

  it('drops a bad CRC without a key', () => {
    const c = cluster(['a', 'b'])
    const d = bundleDatagram([text('x')], { sender: 'a' })
    d[HEADER_BYTES + 2]! ^= 1
    c.sockets.b!.inject(d, '10.0.0.1', 7001)
    expect(drops(c.nodes.b!.stats())).toEqual({ 'drop.badCrc': 1 })
  })

  it('drops authentic datagrams whose body is malformed, delivering none of it', () => {
    const { got, fromA, b } = setup()
    fromA(sealBody(new Uint8Array([0, 2, 1, 2, 0, 9, 1]), valid)) // 2nd entry overruns
    fromA(sealBody(new Uint8Array([0, 1, 5, 0]), valid)) // dangling length byte
    fromA(sealBody(new Uint8Array([1, 2, 3]), valid, true)) // fragment too short
    fromA(
      fragmentDatagram(
        { messageId: 1, total: 10, chunkSize: 4, index: 5, chunk: new Uint8Array(4) },
        valid,
      ),
    )
    expect(got).toHaveLength(0)
    expect(drops(b.stats())).toEqual({ 'drop.badBundle': 2, 'drop.badFragment': 2 })
  })

  it('counts duplicate fragments and bounds memory under a fragment flood', () => {
    const { got, fromA, b } = setup({ reassembly: { maxBytes: 20_000, timeoutMs: 1000 } })
    const f = { messageId: 5, total: 3000, chunkSize: 1000, index: 0, chunk: new Uint8Array(1000) }
    fromA(fragmentDatagram(f, valid))
    fromA(fragmentDatagram(f, valid))
    for (let id = 100; id < 200; id++) {
      fromA(fragmentDatagram({ ...f, messageId: id }, valid))
      expect(b.stats()['reassembly.bytes']).toBeLessThanOrEqual(20_000)
    }
    expect(got).toHaveLength(0)
    const stats = b.stats()
    expect(stats['drop.duplicateFragment']).toBe(1)
    expect(stats['drop.reassemblyEvicted']).toBeGreaterThan(90)
  })

  it('logs each drop at debug level with its reason', () => {
    const sink = memorySink()
    const c = cluster(['a', 'b'], { key: KEY, logger: createLogger({ level: 'debug', sink }) })
    c.sockets.b!.inject(bundleDatagram([text('x')], { key: KEY, sender: 'mallory' }), '10.0.0.9', 4)
    expect(sink.records).toEqual([
      expect.objectContaining({
        level: 'debug',
        msg: 'dropped datagram',
        host: 'b',
        fields: { reason: 'unknownSender', from: '10.0.0.9:4', bytes: 45 },
      }),
    ])
  })

  it('does not log when the logger is above debug level', () => {
    const sink = memorySink()
    const c = cluster(['a', 'b'], { key: KEY, logger: createLogger({ level: 'info', sink }) })
    c.sockets.b!.inject(new Uint8Array(3), '10.0.0.9', 4)
    expect(c.nodes.b!.stats()['drop.badMagic']).toBe(1)
    expect(sink.records).toEqual([])
  })
})
