/**
 * The TCP front and the typed client, in-process over a one-replica Dispatcher: the protocol,
 * pipelining, blocking, cancellation, disconnects, and every kind of bad input.
 */
import { getEventListeners } from 'node:events'
import { connect as connectTcp, type Socket } from 'node:net'
import { afterEach, describe, expect, expectTypeOf, it } from 'vitest'
import { connect, type TupleSpace } from '../src/client.js'
import { TupleSpaceReplica } from '../src/replica.js'
import { serveTupleSpace, type TupleServer } from '../src/serve.js'
import { formal } from '../src/tuple.js'
import { localDispatcher } from './fixtures/local-dispatcher.js'
import { rng } from './fixtures/random.js'

const cleanup: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f()
})

async function start(
  options: {
    maxFrameBytes?: number
    maxPending?: number
    maxBufferedBytes?: number
    maxConnections?: number
    keepAliveMs?: number
  } = {},
) {
  const d = localDispatcher()
  const replica = new TupleSpaceReplica({ dispatcher: () => d, origin: 'a', session: 's' })
  const server: TupleServer = await serveTupleSpace(replica, {
    port: 0,
    ...options,
    info: () => ({ replica: 'a', recovery: 'active' }),
  })
  cleanup.push(() => server.close())
  const client = async (): Promise<TupleSpace> => {
    const c = await connect({ port: server.port })
    cleanup.push(() => c.close())
    return c
  }
  return { d, replica, server, client }
}

/** A raw connection: send lines, read reply lines. */
async function raw(port: number) {
  const socket: Socket = connectTcp({ port, host: '127.0.0.1' })
  await new Promise((r) => socket.once('connect', r))
  cleanup.push(async () => void socket.destroy())
  let buffered = ''
  const lines: string[] = []
  socket.on('data', (b: Buffer) => {
    buffered += b.toString('utf8')
    let nl = buffered.indexOf('\n')
    while (nl >= 0) {
      lines.push(buffered.slice(0, nl))
      buffered = buffered.slice(nl + 1)
      nl = buffered.indexOf('\n')
    }
  })
  return {
    socket,
    send: (text: string | Buffer) => socket.write(text),
    /** Waits for `n` replies in all, and returns them parsed. */
    replies: async (n: number) => {
      const deadline = Date.now() + 5_000
      while (lines.length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5))
      return lines.slice(0, n).map((l) => JSON.parse(l) as Record<string, unknown>)
    },
  }
}

const until = async (ok: () => boolean, what: string) => {
  const deadline = Date.now() + 5_000
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

describe('the client over TCP', () => {
  it('out, in, rd, inp, rdp, info — typed by the template', async () => {
    const { client } = await start()
    const ts = await client()
    await ts.out(['point', 1, 2.5, 'label', true, null, new Uint8Array([7])])
    const read = await ts.rd([
      'point',
      formal.int,
      formal.number,
      formal.string,
      formal.boolean,
      null,
      formal.bytes,
    ])
    expectTypeOf(read).toEqualTypeOf<['point', number, number, string, boolean, null, Uint8Array]>()
    expect(read).toEqual(['point', 1, 2.5, 'label', true, null, new Uint8Array([7])])
    expect(
      await ts.rdp([
        'point',
        formal.any,
        formal.any,
        formal.any,
        formal.any,
        formal.any,
        formal.any,
      ]),
    ).toEqual(read)
    const [, x] = await ts.in([
      'point',
      formal.int,
      formal.any,
      formal.any,
      formal.any,
      formal.any,
      formal.any,
    ])
    expect(x).toBe(1)
    expect(
      await ts.inp([
        'point',
        formal.any,
        formal.any,
        formal.any,
        formal.any,
        formal.any,
        formal.any,
      ]),
    ).toBeUndefined()
    expect(await ts.info()).toMatchObject({
      replica: 'a',
      recovery: 'active',
      tuples: 0,
      waiters: 0,
    })
  })

  it('a blocking in on one connection is woken by an out on another', async () => {
    const { client } = await start()
    const [c1, c2] = [await client(), await client()]
    const waiting = c1.in(['job', formal.int])
    let done = false
    void waiting.then(() => (done = true))
    await new Promise((r) => setTimeout(r, 30))
    expect(done).toBe(false)
    await c2.out(['job', 9])
    expect(await waiting).toEqual(['job', 9])
  })

  it('pipelined: 200 ins and 200 outs in flight on one connection, every tuple taken once', async () => {
    const { client, d } = await start()
    const ts = await client()
    const ins = Array.from({ length: 200 }, () => ts.in(['n', formal.int]))
    const outs = Array.from({ length: 200 }, (_, i) => ts.out(['n', i]))
    await Promise.all(outs)
    const got = (await Promise.all(ins)).map(([, n]) => n).sort((a, b) => a - b)
    expect(got).toEqual(Array.from({ length: 200 }, (_, i) => i))
    expect(d.state().size).toBe(0)
    expect(d.state().waiters.size).toBe(0)
  })

  it('an aborted in rejects CANCELLED and takes nothing', async () => {
    const { client, d } = await start()
    const ts = await client()
    const controller = new AbortController()
    const waiting = ts.in(['never'], { signal: controller.signal })
    await until(() => d.state().waiters.size === 1, 'the waiter')
    controller.abort()
    await expect(waiting).rejects.toMatchObject({ code: 'CANCELLED' })
    await until(() => d.state().waiters.size === 0, 'the waiter removed')
    await ts.out(['never'])
    expect(d.state().size).toBe(1)
  })

  it('one long-lived signal for many requests: no abort listener is left behind by those that settled', async () => {
    const { client } = await start()
    const ts = await client()
    const shutdown = new AbortController()
    for (let i = 0; i < 20; i++) {
      await ts.out(['job', i])
      expect(await ts.in(['job', i], { signal: shutdown.signal })).toEqual(['job', i])
    }
    expect(getEventListeners(shutdown.signal, 'abort')).toHaveLength(0)
  })

  it('a client that disconnects while its in waits never consumes a tuple', async () => {
    const { client, d } = await start()
    const gone = await client()
    const waiting = gone.in(['work', formal.any])
    await until(() => d.state().waiters.size === 1, 'the waiter')
    await gone.close()
    await expect(waiting).rejects.toMatchObject({ code: 'CONNECTION_CLOSED' })
    await until(() => d.state().waiters.size === 0, 'the waiter removed')
    const other = await client()
    await other.out(['work', 1])
    await new Promise((r) => setTimeout(r, 20))
    expect(d.state().size).toBe(1)
    expect(await other.in(['work', formal.any])).toEqual(['work', 1])
  })

  it('client-side checks: a bad tuple or template is refused before it is sent', async () => {
    const { client, d } = await start()
    const ts = await client()
    await expect(ts.out([{} as never])).rejects.toMatchObject({ code: 'BAD_TUPLE' })
    await expect(ts.in([{ formal: 'float' } as never])).rejects.toMatchObject({
      code: 'BAD_TEMPLATE',
    })
    expect(d.log).toEqual([])
  })
})

describe('bad input over the wire', () => {
  it('gets an error reply per line, with the id when there was one; the connection keeps working', async () => {
    const { server } = await start()
    const c = await raw(server.port)
    c.send('this is not json\n')
    c.send('[1,2,3]\n')
    c.send('{"op":"info"}\n')
    c.send('{"id":1,"op":"explode"}\n')
    c.send('{"id":2,"op":"out","tuple":[[1]]}\n')
    c.send('{"id":3,"op":"in","template":[{"formal":"float"}]}\n')
    c.send('{"id":4,"op":"in","template":["never"]}\n')
    c.send('{"id":4,"op":"in","template":["never"]}\n')
    c.send('{"id":5,"op":"cancel","target":"nobody"}\n')
    c.send('{"id":6,"op":"out","tuple":["ok"]}\r\n')
    const r = await c.replies(9)
    const summary = r.map((x) => [
      x.id,
      x.ok,
      (x.error as { code?: string } | undefined)?.code ?? x.cancelled ?? '',
    ])
    expect(summary).toEqual([
      [null, false, 'BAD_FRAME'],
      [null, false, 'BAD_FRAME'],
      [null, false, 'BAD_REQUEST'],
      [1, false, 'UNKNOWN_OP'],
      [2, false, 'BAD_TUPLE'],
      [3, false, 'BAD_TEMPLATE'],
      [4, false, 'DUPLICATE_ID'],
      [5, true, false],
      [6, true, ''],
    ])
    for (const x of r.filter((x) => !x.ok))
      expect((x.error as { message: string }).message.length).toBeGreaterThan(5)
    // The pending in 4 is still there and can be cancelled by id.
    c.send('{"id":7,"op":"cancel","target":4}\n')
    const more = await c.replies(11)
    expect(more.slice(9).map((x) => [x.id, x.ok])).toEqual(
      expect.arrayContaining([
        [7, true],
        [4, false],
      ]),
    )
  })

  it('an over-long line is skipped to its end with FRAME_TOO_LONG; too many pending requests are refused', async () => {
    const { server } = await start({ maxFrameBytes: 1024, maxPending: 3 })
    const c = await raw(server.port)
    c.send(`{"id":1,"op":"out","tuple":["${'x'.repeat(5_000)}"]}\n`)
    c.send('{"id":2,"op":"info"}\n')
    for (let i = 3; i <= 6; i++) c.send(`{"id":${i},"op":"in","template":["never"]}\n`)
    const r = await c.replies(3)
    expect(r.map((x) => [x.id, (x.error as { code?: string } | undefined)?.code])).toEqual([
      [null, 'FRAME_TOO_LONG'],
      [2, undefined],
      [6, 'TOO_MANY_PENDING'],
    ])
  })

  it('random bytes never crash the server; each line gets an error and a good request still works', async () => {
    const { server } = await start()
    const c = await raw(server.port)
    const random = rng(99)
    let lines = 0
    for (let i = 0; i < 300; i++) {
      const bytes = Buffer.from(
        Array.from({ length: 1 + Math.floor(random() * 80) }, () => {
          const b = Math.floor(random() * 256)
          return b === 10 ? 11 : b
        }),
      )
      if (bytes.toString('utf8').trim().length === 0) continue
      c.send(Buffer.concat([bytes, Buffer.from('\n')]))
      lines++
    }
    c.send('{"id":"last","op":"info"}\n')
    const r = await c.replies(lines + 1)
    expect(r).toHaveLength(lines + 1)
    expect(r.slice(0, lines).every((x) => x.ok === false)).toBe(true)
    expect(r[lines]).toMatchObject({ id: 'last', ok: true })
  })
})

describe('connections that go away or do not read', () => {
  it('a half-close cancels the pending requests: a take that lands after the client’s FIN puts its tuple back instead of writing it to a closed socket', async () => {
    const d = localDispatcher('manual')
    const replica = new TupleSpaceReplica({ dispatcher: () => d, origin: 'a', session: 's' })
    const put = replica.out(['x'])
    await d.flush()
    await put
    const server = await serveTupleSpace(replica, { port: 0 })
    cleanup.push(() => server.close())
    // The group applies the take just after the server has seen the client's FIN (and, with
    // allowHalfOpen off, ended its own side): the tuple must not be consumed for nobody.
    server.server.on('connection', (socket: Socket) =>
      socket.on('end', () => {
        d.step()
      }),
    )
    const c = await raw(server.port)
    c.send('{"id":1,"op":"in","template":["x"]}\n')
    await until(() => d.queued().length === 1, 'the take submitted')
    c.socket.end()
    await until(() => d.log.length >= 2, 'the take applied')
    await d.flush()
    expect(d.log.map((x) => x.tag)).toEqual(['out', 'take', 'release'])
    expect(d.state().size).toBe(1)
  })

  it('a client that sends but never reads: the server stops reading instead of buffering replies without bound', async () => {
    const { server } = await start({ maxBufferedBytes: 64 * 1024 })
    let serverSide: Socket | undefined
    server.server.on('connection', (socket: Socket) => (serverSide = socket))
    const socket = connectTcp({ port: server.port, host: '127.0.0.1' })
    cleanup.push(async () => void socket.destroy())
    await new Promise((r) => socket.once('connect', r))
    socket.pause() // never reads a reply
    const line = Buffer.from('{"id":1,"op":"info"}\n')
    const chunk = Buffer.concat(Array.from({ length: 1_000 }, () => line)) // ≈ 21 KB of requests
    let most = 0
    for (let i = 0; i < 60; i++) {
      socket.write(chunk) // ≈ 1.3 MB of requests, ≈ 8 MB of replies
      await new Promise((r) => setImmediate(r))
      most = Math.max(most, serverSide?.writableLength ?? 0)
    }
    await new Promise((r) => setTimeout(r, 100))
    most = Math.max(most, serverSide?.writableLength ?? 0)
    expect(serverSide).toBeDefined()
    // At most the limit and the replies to one chunk of requests; without it, all ≈ 8 MB.
    expect(most).toBeLessThan(1024 * 1024)
    // Reading again: every request is answered.
    let replies = 0
    let rest = ''
    socket.on('data', (b: Buffer) => {
      rest += b.toString('utf8')
      const parts = rest.split('\n')
      rest = parts.pop()!
      replies += parts.length
    })
    socket.resume()
    await until(() => replies === 60_000, `every reply (${replies})`)
  })

  it('a failed accept (EMFILE) does not crash the server', async () => {
    const { server, client } = await start()
    expect(() => server.server.emit('error', new Error('accept EMFILE'))).not.toThrow()
    const ts = await client()
    expect(await ts.info()).toMatchObject({ replica: 'a' })
  })
})

describe('connection limits', () => {
  it('a connection over maxConnections gets TOO_MANY_CONNECTIONS and is closed; a freed slot is taken again', async () => {
    const { server } = await start({ maxConnections: 2 })
    const a = await raw(server.port)
    const b = await raw(server.port)
    a.send('{"id":1,"op":"info"}\n')
    b.send('{"id":1,"op":"info"}\n')
    expect((await a.replies(1))[0]).toMatchObject({ id: 1, ok: true })
    expect((await b.replies(1))[0]).toMatchObject({ id: 1, ok: true })
    const c = await raw(server.port)
    let closed = false
    c.socket.on('close', () => {
      closed = true
    })
    expect((await c.replies(1))[0]).toMatchObject({
      id: null,
      ok: false,
      error: { code: 'TOO_MANY_CONNECTIONS' },
    })
    await until(() => closed, 'the refused connection to close')
    a.socket.destroy()
    await new Promise((r) => setTimeout(r, 50))
    const d = await raw(server.port)
    d.send('{"id":2,"op":"info"}\n')
    expect((await d.replies(1))[0]).toMatchObject({ id: 2, ok: true })
  })

  it('bad limits throw', async () => {
    await expect(start({ maxConnections: 0 })).rejects.toThrow(/maxConnections must be a positive/)
    await expect(start({ keepAliveMs: 1.5 })).rejects.toThrow(/keepAliveMs must be an integer/)
  })
})
