/**
 * The TCP front of one replica: each connection speaks the line protocol of `protocol.ts`.
 * Bad input never closes the connection nor crashes the process: every bad line gets an error
 * reply (with the request's id when it had one). A connection that closes — or half-closes:
 * its FIN ends our side too — cancels its pending `in`/`rd`/`inp`/`rdp` requests, so a
 * disconnected client never consumes a tuple.
 *
 * Invariant: a reply is written only while the connection is open both ways (`conn.open`);
 * once it is not, every pending request has been cancelled, so a tuple that arrives for one
 * goes back to the space (`release`) instead of into a socket that cannot carry it.
 *
 * Backpressure: while more than `maxBufferedBytes` of replies wait to be sent, the connection
 * is not read — a client that pipelines without reading holds the server's memory to about
 * that (plus the replies of one chunk of requests and of those already pending).
 */
import { createServer, type Server, type Socket } from 'node:net'
import { TupleSpaceError } from './errors.js'
import {
  errorReply,
  LineSplitter,
  okReply,
  parseRequest,
  type RequestId,
  tupleToJson,
} from './protocol.js'
import type { PendingRequest, TupleSpaceReplica } from './replica.js'
import type { Tuple } from './tuple.js'

export interface ServeOptions {
  /** TCP port (0: any free one; read it from `server.address()`). */
  readonly port: number
  /** Default `127.0.0.1`. */
  readonly host?: string
  /** Longest line accepted (bytes, default 1 MiB). */
  readonly maxFrameBytes?: number
  /** Most requests pending on one connection (default 10,000). */
  readonly maxPending?: number
  /** Most bytes of replies buffered for one connection before it stops being read (default 1 MiB). */
  readonly maxBufferedBytes?: number
  /** What `info` answers besides the counts (replica name, recovery state, …). */
  readonly info?: () => Record<string, unknown>
  /**
   * Open connections at most (default 10,000): one more gets a `TOO_MANY_CONNECTIONS` error
   * line (id `null`) and is closed.
   */
  readonly maxConnections?: number
  /**
   * TCP keepalive's first probe after this much idleness (ms; default 60,000; 0: off), so the
   * connection of a client whose host died is closed and its waiting requests cancelled.
   */
  readonly keepAliveMs?: number
  /** The listening socket's errors after it listens (a failed accept: `EMFILE`, …); never thrown. */
  readonly onError?: (error: Error) => void
}

interface Connection {
  readonly socket: Socket
  readonly pending: Map<RequestId, PendingRequest<unknown> | undefined>
  open: boolean
  /** Not read while the client does not read its replies (see the header). */
  paused: boolean
}

export interface TupleServer {
  readonly server: Server
  /** The port it listens on. */
  readonly port: number
  /** Stops listening and closes every connection (their pending requests are cancelled). */
  close(): Promise<void>
}

/** Starts listening; resolves once it does. */
export function serveTupleSpace(
  replica: TupleSpaceReplica,
  options: ServeOptions,
): Promise<TupleServer> {
  const maxFrameBytes = options.maxFrameBytes ?? 1024 * 1024
  const maxPending = options.maxPending ?? 10_000
  const maxBufferedBytes = options.maxBufferedBytes ?? 1024 * 1024
  const maxConnections = options.maxConnections ?? 10_000
  if (!Number.isSafeInteger(maxConnections) || maxConnections < 1)
    throw new RangeError(`maxConnections must be a positive integer, got ${maxConnections}`)
  const keepAliveMs = options.keepAliveMs ?? 60_000
  if (!Number.isSafeInteger(keepAliveMs) || keepAliveMs < 0)
    throw new RangeError(`keepAliveMs must be an integer >= 0, got ${keepAliveMs}`)
  /** Each open connection's `closed` (cancels its pending requests). */
  const connections = new Map<Socket, () => void>()
  const server = createServer((socket) => {
    if (connections.size >= maxConnections) {
      socket.on('error', () => undefined)
      socket.end(
        errorReply(
          null,
          new TupleSpaceError(
            'TOO_MANY_CONNECTIONS',
            `the server has ${maxConnections} connections open: try later or another replica`,
          ),
        ),
      )
      // Read (and drop) what it sends, so its end is seen and the socket closes.
      socket.resume()
      setTimeout(() => socket.destroy(), 1_000).unref()
      return
    }
    socket.setNoDelay(true)
    if (keepAliveMs > 0) socket.setKeepAlive(true, keepAliveMs)
    const conn: Connection = { socket, pending: new Map(), open: true, paused: false }
    const send = (text: string) => {
      if (!conn.open) return
      socket.write(text)
      if (!conn.paused && socket.writableLength > maxBufferedBytes) {
        conn.paused = true
        socket.pause()
      }
    }
    // Past the high-water mark write() returned false, so 'drain' comes once it is all sent.
    socket.on('drain', () => {
      if (!conn.paused || !conn.open) return
      conn.paused = false
      socket.resume()
    })
    const splitter = new LineSplitter(
      maxFrameBytes,
      (line) => {
        if (conn.open) handle(replica, conn, line, send, maxPending, options.info)
      },
      () =>
        send(
          errorReply(
            null,
            new TupleSpaceError(
              'FRAME_TOO_LONG',
              `a line of more than ${maxFrameBytes} bytes: skipped up to its newline`,
            ),
          ),
        ),
    )
    socket.on('data', (chunk: Buffer) => splitter.push(chunk))
    const closed = () => {
      connections.delete(socket)
      if (!conn.open) return
      conn.open = false
      for (const p of conn.pending.values()) p?.cancel()
      conn.pending.clear()
    }
    connections.set(socket, closed)
    socket.on('close', closed)
    socket.on('error', closed)
    // The client's FIN: with allowHalfOpen off Node ends our side as well, so nothing more can
    // be written — cancel now, not at 'close' (a reply settled in between would be lost).
    socket.on('end', closed)
  })
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port, options.host ?? '127.0.0.1', () => {
      server.off('error', reject)
      // Without a listener an 'error' (a failed accept) would be thrown and end the process.
      server.on('error', (error) => options.onError?.(error))
      const address = server.address()
      resolve({
        server,
        port: typeof address === 'object' && address !== null ? address.port : options.port,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done())
            for (const [socket, closed] of [...connections]) {
              closed()
              socket.destroy()
            }
          }),
      })
    })
  })
}

function handle(
  replica: TupleSpaceReplica,
  conn: Connection,
  line: string,
  send: (text: string) => void,
  maxPending: number,
  info: (() => Record<string, unknown>) | undefined,
): void {
  const request = parseRequest(line)
  if ('error' in request) {
    send(errorReply(request.id, request.error))
    return
  }
  const { id } = request
  if (conn.pending.has(id)) {
    send(errorReply(id, new TupleSpaceError('DUPLICATE_ID', `request ${id} is still pending`)))
    return
  }
  if (conn.pending.size >= maxPending && request.op !== 'cancel') {
    send(
      errorReply(
        id,
        new TupleSpaceError('TOO_MANY_PENDING', `${maxPending} requests are pending here already`),
      ),
    )
    return
  }
  const fail = (error: unknown) => {
    conn.pending.delete(id)
    send(
      errorReply(
        id,
        TupleSpaceError.isInstance(error) ? error : new TupleSpaceError('INTERNAL', String(error)),
      ),
    )
  }
  switch (request.op) {
    case 'out': {
      conn.pending.set(id, undefined)
      replica.out(request.tuple).then(() => {
        conn.pending.delete(id)
        send(okReply(id))
      }, fail)
      return
    }
    case 'in':
    case 'rd':
    case 'inp':
    case 'rdp': {
      const p = replica[request.op](request.template) as PendingRequest<Tuple | undefined>
      conn.pending.set(id, p)
      p.result.then((tuple) => {
        conn.pending.delete(id)
        send(okReply(id, { tuple: tuple === undefined ? null : tupleToJson(tuple) }))
      }, fail)
      return
    }
    case 'cancel': {
      const target = conn.pending.get(request.target)
      send(okReply(id, { cancelled: target?.cancel() ?? false }))
      return
    }
    case 'info': {
      const state = replica.state()
      send(
        okReply(id, {
          ...info?.(),
          tuples: state?.size ?? null,
          waiters: state?.waiters.size ?? null,
          ...replica.stats(),
        }),
      )
      return
    }
  }
}
