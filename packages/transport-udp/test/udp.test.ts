/** `udp()` on real sockets, on loopback only (127.0.0.1, ::1 and a 239/8 group on lo). */
import { afterEach, describe, expect, it } from 'vitest'
import { UdpTransportError } from '../src/errors.js'
import { type UdpOptions, udp } from '../src/index.js'
import type { UdpTransport } from '../src/transport.js'
import { bundleDatagram } from './craft.js'
import { KEY } from './fakes.js'
import { freePorts, rawSocket, waitFor } from './net.js'

const text = (s: string) => new TextEncoder().encode(s)
const decode = (b: Uint8Array) => new TextDecoder().decode(b)

const open: UdpTransport[] = []
afterEach(async () => {
  await Promise.all(open.splice(0).map((t) => t.close()))
})

async function members(
  ids: string[],
  host: string,
  extra: Partial<UdpOptions> = {},
  otherPeers: Record<string, { host: string; port: number }> = {},
): Promise<Record<string, UdpTransport>> {
  const ports = await freePorts(ids.length, host)
  const peers = {
    ...otherPeers,
    ...Object.fromEntries(ids.map((id, i) => [id, { host, port: ports[i]! }])),
  }
  const out: Record<string, UdpTransport> = {}
  for (const [i, id] of ids.entries()) {
    const t = await udp({ ...extra, self: id, peers, host, port: ports[i]! })
    open.push(t)
    out[id] = t
  }
  return out
}

async function rejection(promise: Promise<unknown>): Promise<UdpTransportError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(error).toBeInstanceOf(UdpTransportError)
  return error as UdpTransportError
}

describe('udp() on loopback', () => {
  it('binds port 0 to a real port and reports it', async () => {
    const t = await udp({ self: 'a', peers: {}, host: '127.0.0.1', port: 0 })
    open.push(t)
    const { address, port, family } = t.address()
    expect(address).toBe('127.0.0.1')
    expect(family).toBe('IPv4')
    expect(port).toBeGreaterThan(0)
    expect(t.peers()).toEqual([])
  })

  for (const host of ['127.0.0.1', '::1']) {
    it(`delivers both ways over ${host} with a key`, async () => {
      const { a, b } = await members(['a', 'b'], host, { key: KEY, groupId: 'test' })
      const atA: string[] = []
      const atB: string[] = []
      a!.onReceive((from, d) => atA.push(`${from}:${decode(d)}`))
      b!.onReceive((from, d) => atB.push(`${from}:${decode(d)}`))
      a!.send('b', text('ping'))
      b!.send('a', text('pong'))
      await waitFor(() => atA.length === 1 && atB.length === 1, 'both messages')
      expect(atB).toEqual(['a:ping'])
      expect(atA).toEqual(['b:pong'])
    })
  }

  it('drops forged datagrams from a raw socket: bad MAC from a peer address, any from elsewhere', async () => {
    const raw = await rawSocket()
    const mallory = { host: '127.0.0.1', port: raw.port }
    const { a, b } = await members(['a', 'b'], '127.0.0.1', { key: KEY }, { mallory })
    const got: string[] = []
    b!.onReceive((from, d) => got.push(`${from}:${decode(d)}`))
    const to = b!.address().port
    // From mallory's configured address but without the key: the MAC gives it away.
    await raw.send(
      bundleDatagram([text('forged')], { key: new Uint8Array(32), sender: 'mallory' }),
      to,
    )
    // A correctly signed datagram claiming to be from a, sent from mallory's port.
    await raw.send(bundleDatagram([text('spoofed')], { key: KEY, sender: 'a' }), to)
    await waitFor(() => b!.stats()['received.datagrams'] === 2, 'two datagrams')
    await raw.close()
    expect(b!.stats()).toMatchObject({ 'drop.badMac': 1, 'drop.addressMismatch': 1 })
    a!.send('b', text('real'))
    await waitFor(() => got.length === 1, 'the real message')
    expect(got).toEqual(['a:real'])
  })

  it('rejects a port in use with ADDRESS_IN_USE naming the port, and close() frees the port', async () => {
    const first = await udp({ self: 'a', peers: {}, host: '127.0.0.1', port: 0 })
    const { port } = first.address()
    const error = await rejection(udp({ self: 'a', peers: {}, host: '127.0.0.1', port }))
    expect(error.code).toBe('ADDRESS_IN_USE')
    expect(error.message).toContain(`127.0.0.1:${port}`)
    expect(error.message).toMatch(/port: 0/)
    await first.close()
    await first.close() // idempotent
    expect(first.address().port).toBe(port) // still answers after close
    const again = await udp({ self: 'a', peers: {}, host: '127.0.0.1', port })
    expect(again.address().port).toBe(port)
    await again.close()
  })

  it('rejects an address that is not this machine’s with BIND_FAILED', async () => {
    const error = await rejection(udp({ self: 'a', peers: {}, host: '192.0.2.123', port: 0 }))
    expect(error.code).toBe('BIND_FAILED')
    expect(error.message).toMatch(/192\.0\.2\.123:0: EADDRNOTAVAIL/)
  })

  it('rejects bad options before binding anything', async () => {
    const error = await rejection(
      udp({ self: 'a', peers: {}, host: '127.0.0.1', port: 0, key: new Uint8Array(8) }),
    )
    expect(error.code).toBe('INVALID_KEY')
  })

  it('broadcasts one IP multicast datagram that every member on the group receives', async () => {
    const [groupPort] = await freePorts(1)
    const multicast = { group: '239.255.42.99', port: groupPort!, interface: '127.0.0.1' }
    const { a, b, c } = await members(['a', 'b', 'c'], '127.0.0.1', { key: KEY, multicast })
    const got: string[] = []
    b!.onReceive((from, d) => got.push(`b<-${from}:${decode(d)}`))
    c!.onReceive((from, d) => got.push(`c<-${from}:${decode(d)}`))
    a!.onReceive((from, d) => got.push(`a<-${from}:${decode(d)}`))
    a!.broadcast(text('to all'))
    await waitFor(() => got.length === 2 && a!.stats()['drop.ownDatagram'] === 1, 'multicast')
    expect(got.sort()).toEqual(['b<-a:to all', 'c<-a:to all'])
    expect(a!.stats()['sent.datagrams']).toBe(1)
    // Unicast still works next to it.
    b!.send('c', text('direct'))
    await waitFor(() => got.length === 3, 'unicast')
    expect(got).toContain('c<-b:direct')
  })
})
