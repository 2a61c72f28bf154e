/**
 * Two real processes on loopback: this one and a child running `fixtures/echo-peer.ts`, each
 * with its own UDP transport and the same key. Checks delivery both ways, bundling of many
 * small messages, a 100 KiB message fragmented and reassembled (there and back), forged
 * datagrams from a raw socket dropped and counted by the child, and that the child's
 * `close()` frees its port.
 */
import { type ChildProcess, fork } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { udp } from '../src/index.js'
import type { UdpTransport } from '../src/transport.js'
import { bundleDatagram } from './craft.js'
import { bytes, KEY } from './fakes.js'
import type { EchoCommand, EchoConfig } from './fixtures/echo-peer.js'
import { freePorts, rawSocket, waitFor } from './net.js'

const HOST = '127.0.0.1'
const text = (s: string) => new TextEncoder().encode(s)
const decode = (b: Uint8Array) => new TextDecoder().decode(b)

let child: ChildProcess
let parent: UdpTransport
let raw: Awaited<ReturnType<typeof rawSocket>>
let childPort: number
const inbox: { from: string; data: Uint8Array }[] = []

function ask<T>(command: EchoConfig | EchoCommand): Promise<T> {
  return new Promise((resolve) => {
    child.once('message', (m) => resolve(m as T))
    child.send(command)
  })
}

async function childStats(): Promise<Record<string, number>> {
  return (await ask<{ stats: Record<string, number> }>({ cmd: 'stats' })).stats
}

beforeAll(async () => {
  raw = await rawSocket(HOST)
  const [parentPort, port] = await freePorts(2, HOST)
  childPort = port!
  const peers = {
    parent: { host: HOST, port: parentPort! },
    child: { host: HOST, port: childPort },
    mallory: { host: HOST, port: raw.port },
  }
  child = fork(fileURLToPath(new URL('./fixtures/echo-peer.ts', import.meta.url)), [], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const ready = await ask<{ ready?: number; error?: string }>({
    self: 'child',
    peers,
    host: HOST,
    port: childPort,
    keyHex: Buffer.from(KEY).toString('hex'),
  })
  expect(ready).toEqual({ ready: childPort })
  parent = await udp({ self: 'parent', peers, host: HOST, port: parentPort!, key: KEY })
  parent.onReceive((from, data) => inbox.push({ from, data }))
})

afterAll(async () => {
  await parent?.close()
  await raw?.close()
  child?.kill()
})

describe('two processes over UDP on loopback', () => {
  it('delivers both ways', async () => {
    inbox.length = 0
    parent.send('child', text('hello'))
    await ask({ cmd: 'send', to: 'parent', texts: ['from the child'] })
    await waitFor(() => inbox.length === 2, 'the echo and the child’s message')
    expect(inbox.map((m) => `${m.from}:${decode(m.data)}`).sort()).toEqual([
      'child:from the child',
      'child:hello',
    ])
  })

  it('bundles many small messages into few datagrams', async () => {
    inbox.length = 0
    const before = await childStats()
    const texts = Array.from({ length: 500 }, (_, i) => `small message #${i}`)
    for (const t of texts) parent.send('child', text(t))
    await waitFor(() => inbox.length === texts.length, '500 echoes')
    const after = await childStats()
    const datagrams = after['received.datagrams']! - before['received.datagrams']!
    expect(after['received.messages']! - before['received.messages']!).toBe(500)
    // ~20 bytes each: about 60 per 1400-byte datagram.
    expect(datagrams).toBeLessThanOrEqual(12)
    expect(inbox.map((m) => decode(m.data)).sort()).toEqual([...texts].sort())
  })

  it('fragments a 100 KiB message and reassembles it, there and back', async () => {
    inbox.length = 0
    const big = bytes(100 * 1024, 42)
    parent.send('child', big)
    await waitFor(() => inbox.length === 1, 'the echoed 100 KiB message')
    expect(Buffer.compare(inbox[0]!.data, big)).toBe(0)
    const stats = await childStats()
    expect(stats['received.reassembled']).toBe(1)
    expect(stats['received.fragments']).toBe(Math.ceil(big.length / 1346))
    expect(stats['reassembly.partials']).toBe(0)
    expect(parent.stats()['received.reassembled']).toBe(1)
  })

  it('drops forged datagrams from a raw socket and counts them by reason', async () => {
    const before = await childStats()
    // Mallory is a configured peer without the key: correct address, wrong MAC.
    await raw.send(
      bundleDatagram([text('forged')], { key: new Uint8Array(32), sender: 'mallory' }),
      childPort,
    )
    await raw.send(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]), childPort)
    let stats = before
    await waitFor(async () => {
      stats = await childStats()
      return stats['received.datagrams']! - before['received.datagrams']! === 2
    }, 'the forged datagrams to arrive')
    expect(stats['drop.badMac']! - before['drop.badMac']!).toBe(1)
    expect(stats['drop.badMagic']! - before['drop.badMagic']!).toBe(1)
    expect(stats['received.messages']).toBe(before['received.messages'])
  })

  it('frees the port when the transport closes', async () => {
    await ask({ cmd: 'close' })
    const socket = createSocket('udp4')
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject)
      socket.bind(childPort, HOST, resolve)
    })
    expect(socket.address().port).toBe(childPort)
    await new Promise<void>((resolve) => socket.close(resolve))
  })
})
