/**
 * The TCP front itself: the connection limit (Redis's `maxclients`) and its options, over real
 * sockets on loopback, with the fake group behind it.
 */
import { once } from 'node:events'
import { connect, type Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { type DirectoryServer, serveDirectory } from '../src/server.js'
import { fakeContext, fakeGroup } from './support/fake-group.js'

let server: DirectoryServer | undefined
const sockets: Socket[] = []
afterEach(async () => {
  for (const s of sockets) s.destroy()
  sockets.length = 0
  await server?.close()
  server = undefined
})

async function start(options: { maxClients?: number; keepAliveMs?: number } = {}) {
  const g = fakeGroup()
  const ctx = fakeContext(g)
  server = await serveDirectory({
    port: 0,
    dispatcher: ctx.dispatcher,
    status: ctx.status,
    ...options,
  })
  return server
}

/** Connects, sends `request` and collects what comes back until `until` matches or it closes. */
function talk(port: number, request: string, until: RegExp) {
  return new Promise<{ text: string; closed: boolean; socket: Socket }>((resolve) => {
    const socket = connect(port, '127.0.0.1')
    sockets.push(socket)
    let text = ''
    let done = false
    const finish = (closed: boolean) => {
      if (done) return
      done = true
      resolve({ text, closed, socket })
    }
    socket.on('data', (d) => {
      text += d.toString()
      if (until.test(text)) finish(false)
    })
    socket.on('close', () => finish(true))
    socket.on('error', () => undefined)
    socket.write(request)
  })
}

describe('the TCP front', () => {
  it('refuses a connection over maxClients with Redis’s error and closes it; a freed slot is taken again', async () => {
    const s = await start({ maxClients: 2 })
    const a = await talk(s.port, 'PING\r\n', /PONG/)
    const b = await talk(s.port, 'PING\r\n', /PONG/)
    expect([a.text, b.text]).toEqual(['+PONG\r\n', '+PONG\r\n'])
    const c = await talk(s.port, 'PING\r\n', /\r\n/)
    expect(c.text).toBe('-ERR max number of clients reached\r\n')
    if (!c.closed && !c.socket.destroyed) await once(c.socket, 'close')
    expect(s.counters.rejectedConnections).toBe(1)
    expect(s.connections()).toBe(2)
    // One leaves: the next one is served.
    a.socket.destroy()
    for (let i = 0; i < 100 && s.connections() > 1; i++) await new Promise((r) => setTimeout(r, 5))
    const d = await talk(s.port, 'INFO stats\r\n', /rejected_connections:\d+/)
    expect(d.text).toMatch(/rejected_connections:1\r\n/)
    expect(d.closed).toBe(false)
  })

  it('bad limits throw at start', async () => {
    await expect(start({ maxClients: 0 })).rejects.toThrow(/maxClients must be a positive integer/)
    await expect(start({ keepAliveMs: -1 })).rejects.toThrow(/keepAliveMs must be an integer >= 0/)
  })
})
