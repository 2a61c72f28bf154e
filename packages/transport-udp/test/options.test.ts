import { hashString } from '@consul/xkernel'
import { describe, expect, it } from 'vitest'
import { parseIpLiteral } from '../src/address.js'
import { UdpTransportError } from '../src/errors.js'
import { groupIdOf, resolveOptions, type UdpOptions } from '../src/options.js'

const base: UdpOptions = {
  self: 'a',
  peers: { a: { host: '127.0.0.1', port: 7001 }, b: { host: '127.0.0.1', port: 7002 } },
  host: '127.0.0.1',
  port: 7001,
}

function rejects(patch: Record<string, unknown>, code: string, message: RegExp): void {
  let caught: unknown
  try {
    resolveOptions({ ...base, ...patch } as UdpOptions)
  } catch (error) {
    caught = error
  }
  expect(caught).toBeInstanceOf(UdpTransportError)
  expect((caught as UdpTransportError).code).toBe(code)
  expect((caught as UdpTransportError).message).toMatch(message)
}

describe('options', () => {
  it('fills in the documented defaults and ignores self in peers', () => {
    const r = resolveOptions(base)
    expect(r.peers).toEqual([{ id: 'b', address: '127.0.0.1', port: 7002 }])
    expect(r).toMatchObject({
      maxDatagram: 1400,
      bundleMs: 0,
      groupId: 0,
      maxSendQueue: 4096,
      reassembly: { timeoutMs: 5000, maxBytes: 16 * 1024 * 1024 },
      keys: undefined,
      encrypt: false,
      epoch: undefined,
      epochFile: undefined,
      replayWindow: 2048,
      multicast: undefined,
      family: 4,
    })
  })

  it('accepts peers without self, and no peers at all', () => {
    expect(
      resolveOptions({ ...base, peers: { b: { host: '127.0.0.1', port: 7002 } } }).peers,
    ).toHaveLength(1)
    expect(resolveOptions({ ...base, peers: {} }).peers).toEqual([])
  })

  it('derives the group id from a string by FNV-1a and takes a u32 as is', () => {
    expect(groupIdOf('directory')).toBe(hashString('directory'))
    expect(groupIdOf(0xdeadbeef)).toBe(0xdeadbeef)
    expect(groupIdOf(undefined)).toBe(0)
  })

  it('copies the key, so changing the caller array later changes nothing', () => {
    const key = new Uint8Array(16).fill(1)
    const r = resolveOptions({ ...base, key })
    key.fill(2)
    expect(r.keys).toHaveLength(1)
    expect(r.keys![0]!.id).toBe(0)
    expect([...r.keys![0]!.key]).toEqual(new Array(16).fill(1))
  })

  it('rejects bad options with a code and a message that says what to do', () => {
    rejects({ self: '' }, 'INVALID_OPTIONS', /self must be a non-empty member id/)
    rejects(
      { host: 'localhost' },
      'INVALID_OPTIONS',
      /host must be an IP address literal.*resolve host names/,
    )
    rejects({ port: 70000 }, 'INVALID_OPTIONS', /port must be an integer in 0..65535/)
    rejects({ peers: null }, 'INVALID_OPTIONS', /peers must be an object/)
    rejects({ peers: { b: { host: '127.0.0.1', port: 0 } } }, 'INVALID_OPTIONS', /peers.b.port/)
    rejects(
      { peers: { b: { host: '::1', port: 1 } } },
      'INVALID_OPTIONS',
      /IPv6 but host 127.0.0.1 is IPv4/,
    )
    rejects(
      { peers: { b: { host: '127.0.0.1', port: 9 }, c: { host: '127.0.0.1', port: 9 } } },
      'INVALID_OPTIONS',
      /peers.c and peers.b have the same address/,
    )
    rejects({ key: new Uint8Array(15) }, 'INVALID_KEY', /at least 16 bytes.*got 15 bytes/)
    rejects({ key: 'secret' }, 'INVALID_KEY', /Uint8Array/)
    rejects({ maxDatagram: 10 }, 'INVALID_OPTIONS', /maxDatagram must be an integer in 78..65507/)
    rejects({ maxDatagram: 70_000 }, 'INVALID_OPTIONS', /maxDatagram/)
    rejects({ bundleMs: -1 }, 'INVALID_OPTIONS', /bundleMs must be a finite number >= 0/)
    rejects({ bundleMs: Number.NaN }, 'INVALID_OPTIONS', /bundleMs/)
    rejects({ groupId: -1 }, 'INVALID_OPTIONS', /groupId/)
    rejects({ groupId: '' }, 'INVALID_OPTIONS', /groupId/)
    rejects({ maxSendQueue: 0 }, 'INVALID_OPTIONS', /maxSendQueue/)
    rejects(
      { reassembly: { timeoutMs: 0 } },
      'INVALID_OPTIONS',
      /reassembly.timeoutMs must be a finite number > 0/,
    )
    rejects({ reassembly: { maxBytes: 1.5 } }, 'INVALID_OPTIONS', /reassembly.maxBytes/)
    rejects(
      { multicast: { group: '10.0.0.1', port: 5000 } },
      'INVALID_OPTIONS',
      /multicast address/,
    )
    rejects({ multicast: { group: 'ff02::1', port: 5000 } }, 'INVALID_OPTIONS', /IPv4/)
    rejects({ multicast: { group: '239.1.1.1', port: 0 } }, 'INVALID_OPTIONS', /multicast.port/)
  })

  it('refuses member ids whose 32-bit sender ids collide', () => {
    // Two ids with the same 32-bit FNV-1a hash (found by a birthday search).
    const pair = ['n512789', 'n749192'] as const
    expect(hashString(pair[0])).toBe(hashString(pair[1]))
    rejects(
      {
        peers: {
          [pair[0]]: { host: '127.0.0.1', port: 1 },
          [pair[1]]: { host: '127.0.0.1', port: 2 },
        },
      },
      'ID_COLLISION',
      /rename one of them/,
    )
  })
})

describe('IP literals', () => {
  it('canonicalizes IPv6 the way Node reports sources, and refuses names and mapped forms', () => {
    expect(parseIpLiteral('127.0.0.1')).toEqual({ address: '127.0.0.1', family: 4 })
    expect(parseIpLiteral('0:0:0:0:0:0:0:1')).toEqual({ address: '::1', family: 6 })
    expect(parseIpLiteral('FE80:0::1')).toEqual({ address: 'fe80::1', family: 6 })
    for (const bad of [
      'localhost',
      '127.1',
      '01.2.3.4',
      '256.0.0.1',
      '::ffff:127.0.0.1',
      '::1:2',
      'fe80::1%eth0',
      '',
    ]) {
      expect(parseIpLiteral(bad)).toBeUndefined()
    }
  })
})

describe('options of replay protection, encryption and keyrings', () => {
  const key = new Uint8Array(32).fill(4)
  it('resolves keyrings, encryption and epochs', () => {
    const r = resolveOptions({
      ...base,
      keys: [
        { id: 7, key },
        { id: 3, key: new Uint8Array(16).fill(1) },
      ],
      encrypt: true,
      cipher: 'chacha20-poly1305',
      epoch: 99,
      replayWindow: 64,
    })
    expect(r.keys!.map((k) => k.id)).toEqual([3, 7])
    expect(r.encrypt).toBe('chacha20-poly1305')
    expect(r.epoch).toBe(99)
    expect(r.replayWindow).toBe(64)
    expect(resolveOptions({ ...base, key, encrypt: true }).encrypt).toBe('aes-256-gcm')
  })

  it('rejects bad ones with a message that says what to do', () => {
    rejects({ key, keys: [{ id: 1, key }] }, 'INVALID_OPTIONS', /key or keys, not both/)
    rejects({ keys: [] }, 'INVALID_KEY', /non-empty array/)
    rejects(
      { keys: [{ id: 256, key }] },
      'INVALID_KEY',
      /keys\[0\].id must be an integer in 0..255/,
    )
    rejects(
      {
        keys: [
          { id: 1, key },
          { id: 1, key },
        ],
      },
      'INVALID_KEY',
      /id 1 twice/,
    )
    rejects({ keys: [{ id: 1, key: new Uint8Array(8) }] }, 'INVALID_KEY', /keys\[0\].key/)
    rejects({ encrypt: true }, 'INVALID_KEY', /encrypt: true needs a key/)
    rejects({ key, cipher: 'aes-256-gcm' }, 'INVALID_OPTIONS', /cipher needs encrypt: true/)
    rejects(
      { key, encrypt: true, cipher: 'des' as never },
      'INVALID_OPTIONS',
      /cipher must be one of/,
    )
    rejects({ epoch: 0 }, 'INVALID_OPTIONS', /epoch must be an integer in 1..281474976710655/)
    rejects({ epoch: 1.5 }, 'INVALID_OPTIONS', /epoch must be an integer/)
    rejects({ epoch: 5, epochFile: '/tmp/x' }, 'INVALID_OPTIONS', /epoch or epochFile/)
    rejects({ epochFile: '' }, 'INVALID_OPTIONS', /epochFile must be a non-empty path/)
    rejects({ replayWindow: 100 }, 'INVALID_OPTIONS', /power of two/)
    rejects({ replayWindow: 32 }, 'INVALID_OPTIONS', /replayWindow must be an integer in 64..65536/)
  })
})
