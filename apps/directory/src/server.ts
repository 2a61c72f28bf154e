/**
 * The directory's TCP front: a Redis-protocol server over one replica's group. Each socket
 * is a `Connection` (see `connection.ts`); the server adds nothing but sockets, the shared
 * counters and a clean stop.
 */
import { createServer, type Server, type Socket } from 'node:net'
import type { DispatcherControl } from '@consul/xkernel'
import {
  Connection,
  newCounters,
  type ReplicaStatus,
  type ServerContext,
  type ServerCounters,
} from './connection.js'
import type { ParserLimits } from './resp.js'

export interface DirectoryServerOptions {
  /** TCP port; 0 takes any free one (read `port` back). */
  readonly port: number
  /** Default `127.0.0.1`. */
  readonly host?: string
  /** The group's Dispatcher now; `undefined` while the group is being re-created. */
  readonly dispatcher: () => DispatcherControl | undefined
  /** The replica's state for `INFO` and the `LOADING` errors. */
  readonly status: () => ReplicaStatus
  /** Order reads through the group (linearizable). Default false: local reads, maybe stale. */
  readonly linearizableReads?: boolean
  /** Require `AUTH <password>` (user `default`) before any other command. */
  readonly password?: string
  /** Unanswered requests per connection before it stops reading (default 4,096). */
  readonly maxPendingPerConnection?: number
  /**
   * Open connections at most (Redis's `maxclients`; default 10,000): one more is answered
   * `-ERR max number of clients reached` and closed (counted `rejected_connections`).
   */
  readonly maxClients?: number
  /**
   * TCP keepalive's first probe after this much idleness (ms; default 60,000; 0: off), so the
   * connection of a client whose host died is closed and its pending requests freed.
   */
  readonly keepAliveMs?: number
  /** How long a command may wait for the group before `UNCERTAIN … timed out` (ms; default 10,000; 0: forever). */
  readonly writeTimeoutMs?: number
  /** The request parser's limits (bulk size, argument count, inline length). */
  readonly limits?: ParserLimits
  /** The clock writes carry (ms since the epoch; default `Date.now`). */
  readonly now?: () => number
}

export interface DirectoryServer {
  readonly server: Server
  readonly port: number
  readonly counters: Readonly<ServerCounters>
  /** Open connections now. */
  connections(): number
  /** Stops listening and closes every connection. */
  close(): Promise<void>
}

/** Starts listening; resolves once it does (rejects if the port cannot be bound). */
export function serveDirectory(options: DirectoryServerOptions): Promise<DirectoryServer> {
  const maxPending = options.maxPendingPerConnection ?? 4096
  if (!Number.isSafeInteger(maxPending) || maxPending < 1)
    throw new RangeError(`maxPendingPerConnection must be a positive integer, got ${maxPending}`)
  const maxClients = options.maxClients ?? 10_000
  if (!Number.isSafeInteger(maxClients) || maxClients < 1)
    throw new RangeError(`maxClients must be a positive integer, got ${maxClients}`)
  const keepAliveMs = options.keepAliveMs ?? 60_000
  if (!Number.isSafeInteger(keepAliveMs) || keepAliveMs < 0)
    throw new RangeError(`keepAliveMs must be an integer >= 0, got ${keepAliveMs}`)
  let ids = 0
  const counters = newCounters()
  const ctx: ServerContext = {
    dispatcher: options.dispatcher,
    status: options.status,
    linearizableReads: options.linearizableReads ?? false,
    password: options.password,
    maxPending,
    writeTimeoutMs: options.writeTimeoutMs ?? 10_000,
    parserLimits: options.limits ?? {},
    counters,
    now: options.now ?? Date.now,
    nextId: () => ++ids,
    connections: new Set(),
  }
  const sockets = new Set<Socket>()
  const server = createServer((socket) => {
    if (sockets.size >= maxClients) {
      // As Redis does: the error, then the connection closes (no Connection, no state).
      counters.rejectedConnections++
      socket.on('error', () => undefined)
      socket.end('-ERR max number of clients reached\r\n')
      // Read (and drop) what it sends, so its end is seen and the socket closes; a client that
      // never closes its side is cut off after a second.
      socket.resume()
      setTimeout(() => socket.destroy(), 1_000).unref()
      return
    }
    sockets.add(socket)
    socket.setNoDelay(true)
    if (keepAliveMs > 0) socket.setKeepAlive(true, keepAliveMs)
    const connection = new Connection(ctx, {
      address: `${socket.remoteAddress}:${socket.remotePort}`,
      write: (chunks) => {
        if (socket.destroyed) return true
        return socket.write(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks))
      },
      end: () => socket.end(),
      pause: () => socket.pause(),
      resume: () => socket.resume(),
    })
    socket.on('data', (chunk: Buffer) => connection.push(chunk))
    socket.on('drain', () => connection.drained())
    socket.on('error', () => undefined) // 'close' follows
    socket.on('close', () => {
      sockets.delete(socket)
      connection.close()
    })
  })
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port, options.host ?? '127.0.0.1', () => {
      server.off('error', reject)
      const address = server.address()
      resolve({
        server,
        port: typeof address === 'object' && address !== null ? address.port : options.port,
        counters,
        connections: () => sockets.size,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done())
            for (const socket of sockets) socket.destroy()
          }),
      })
    })
  })
}
