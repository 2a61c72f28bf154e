/**
 * Deterministic stand-ins for the services the transport core runs on: a manual clock, a
 * manual end-of-turn queue, and an in-memory network of fake sockets that delivers only when
 * told to. With them a test decides exactly when bundles flush, timers fire and datagrams
 * arrive.
 */
import type { Clock, Timer } from '@consul/xkernel'
import type {
  BoundAddress,
  DatagramHandler,
  DatagramSocket,
  Defer,
  SendDone,
} from '../src/datagram-socket.js'
import { type ResolvedOptions, resolveOptions, type UdpOptions } from '../src/options.js'
import { UdpTransportCore } from '../src/transport.js'

export class ManualClock implements Clock {
  private time = 0
  private seq = 0
  private readonly timers: { at: number; seq: number; callback: () => void; live: boolean }[] = []

  now(): number {
    return this.time
  }

  setTimer(delayMs: number, callback: () => void): Timer {
    const delay = Number.isFinite(delayMs) && delayMs > 0 ? delayMs : 0
    const entry = { at: this.time + delay, seq: this.seq++, callback, live: true }
    this.timers.push(entry)
    return {
      cancel: () => {
        entry.live = false
      },
    }
  }

  get pending(): number {
    return this.timers.filter((t) => t.live).length
  }

  /** Moves time forward by `ms`, running due timers in (time, creation) order. */
  advance(ms: number): void {
    const until = this.time + ms
    for (;;) {
      const due = this.timers
        .filter((t) => t.live && t.at <= until)
        .sort((a, b) => a.at - b.at || a.seq - b.seq)[0]
      if (due === undefined) break
      due.live = false
      this.time = Math.max(this.time, due.at)
      due.callback()
    }
    this.time = until
    for (let i = this.timers.length - 1; i >= 0; i--)
      if (!this.timers[i]!.live) this.timers.splice(i, 1)
  }
}

/** End-of-turn callbacks, run when the test says the turn is over. */
export class ManualDefer {
  private queue: (() => void)[] = []
  readonly defer: Defer = (callback) => {
    this.queue.push(callback)
  }

  get pending(): number {
    return this.queue.length
  }

  /** Runs the queued callbacks (and any they queue). */
  endTurn(): void {
    while (this.queue.length > 0) {
      const batch = this.queue
      this.queue = []
      for (const callback of batch) callback()
    }
  }
}

export interface SentDatagram {
  readonly bytes: Uint8Array
  readonly address: string
  readonly port: number
}

/** Delivers datagrams between fake sockets by `address:port`, when `deliver()` is called. */
export class FakeNetwork {
  private readonly sockets = new Map<string, FakeSocket>()
  private inFlight: { to: string; bytes: Uint8Array; from: BoundAddress }[] = []
  /** Every datagram ever sent, in order (copies). */
  readonly log: SentDatagram[] = []

  socket(address: string, port: number): FakeSocket {
    const socket = new FakeSocket(this, {
      address,
      port,
      family: address.includes(':') ? 'IPv6' : 'IPv4',
    })
    this.sockets.set(`${address}:${port}`, socket)
    return socket
  }

  route(from: BoundAddress, bytes: Uint8Array, address: string, port: number): void {
    this.log.push({ bytes, address, port })
    this.inFlight.push({ to: `${address}:${port}`, bytes, from })
  }

  /** Delivers everything in flight (and what that provokes); returns how many arrived. */
  deliver(): number {
    let n = 0
    while (this.inFlight.length > 0) {
      const batch = this.inFlight
      this.inFlight = []
      for (const d of batch) {
        const target = this.sockets.get(d.to)
        if (target === undefined || target.closed) continue
        n++
        target.inject(d.bytes.slice(), d.from.address, d.from.port)
      }
    }
    return n
  }

  /** Forgets datagrams in flight (a lossy moment). */
  lose(): number {
    const n = this.inFlight.length
    this.inFlight = []
    return n
  }
}

export class FakeSocket implements DatagramSocket {
  private handler: DatagramHandler | undefined
  private errorHandler: ((error: Error) => void) | undefined
  closed = false
  /** When set, sends fail with this error (reported through `done`). */
  failWith: Error | undefined
  /** When true, completions wait for `complete()` instead of running at once. */
  holdCompletions = false
  private held: SendDone[] = []

  constructor(
    private readonly network: FakeNetwork,
    private readonly bound: BoundAddress,
  ) {}

  send(bytes: Uint8Array, length: number, port: number, address: string, done: SendDone): void {
    if (this.failWith !== undefined) {
      done(this.failWith)
      return
    }
    this.network.route(this.bound, bytes.slice(0, length), address, port)
    if (this.holdCompletions) this.held.push(done)
    else done(null)
  }

  /** Runs held send completions. */
  complete(): void {
    const held = this.held
    this.held = []
    for (const done of held) done(null)
  }

  onDatagram(handler: DatagramHandler): void {
    this.handler = handler
  }

  onError(handler: (error: Error) => void): void {
    this.errorHandler = handler
  }

  emitError(error: Error): void {
    this.errorHandler?.(error)
  }

  inject(bytes: Uint8Array, address: string, port: number): void {
    this.handler?.(bytes, address, port)
  }

  address(): BoundAddress {
    return this.bound
  }

  async close(): Promise<void> {
    this.closed = true
  }
}

export const KEY = new Uint8Array(32).map((_, i) => i * 7 + 1)

/** `peers` for members `ids` at 10.0.0.1:(7001…). */
export function addresses(ids: readonly string[]): Record<string, { host: string; port: number }> {
  return Object.fromEntries(ids.map((id, i) => [id, { host: '10.0.0.1', port: 7001 + i }]))
}

export interface Cluster {
  readonly network: FakeNetwork
  readonly clock: ManualClock
  readonly turn: ManualDefer
  readonly nodes: Record<string, UdpTransportCore>
  readonly sockets: Record<string, FakeSocket>
  readonly options: Record<string, ResolvedOptions>
  /** Ends the turn (flushing bundles) and delivers until quiet. */
  settle(): void
  /** Replaces member `id` by a new incarnation with `epoch` on the same address. */
  restart(id: string, epoch: number, extra?: Partial<UdpOptions>): UdpTransportCore
}

/** Transport cores for `ids` on a fake network, all with the same extra options. */
export interface ClusterTuning {
  /** Each member's epoch (default 1). */
  readonly epochs?: Readonly<Record<string, number>>
  /** Every member's first datagram counter (default 1). */
  readonly firstCounter?: number
}

export function cluster(
  ids: readonly string[],
  extra: Partial<Omit<UdpOptions, 'self' | 'peers' | 'host' | 'port'>> = {},
  tuning: ClusterTuning = {},
): Cluster {
  const epochs = tuning.epochs ?? {}
  const network = new FakeNetwork()
  const clock = new ManualClock()
  const turn = new ManualDefer()
  const peers = addresses(ids)
  const nodes: Record<string, UdpTransportCore> = {}
  const sockets: Record<string, FakeSocket> = {}
  const options: Record<string, ResolvedOptions> = {}
  for (const id of ids) {
    const where = peers[id]!
    const resolved = resolveOptions({
      ...extra,
      self: id,
      peers,
      host: where.host,
      port: where.port,
    })
    const socket = network.socket(where.host, where.port)
    nodes[id] = new UdpTransportCore(resolved, {
      socket,
      clock,
      defer: turn.defer,
      firstMessageId: 1000,
      epoch: epochs[id] ?? 1,
      ...(tuning.firstCounter === undefined ? {} : { firstCounter: tuning.firstCounter }),
      ...(extra.logger === undefined ? {} : { logger: extra.logger.child({ host: id }) }),
    })
    sockets[id] = socket
    options[id] = resolved
  }
  return {
    network,
    clock,
    turn,
    nodes,
    sockets,
    options,
    settle() {
      do turn.endTurn()
      while (network.deliver() > 0 || turn.pending > 0)
    },
    restart(id, epoch, more = {}) {
      const where = peers[id]!
      void nodes[id]!.close()
      const resolved = resolveOptions({
        ...extra,
        ...more,
        self: id,
        peers,
        host: where.host,
        port: where.port,
      })
      const socket = network.socket(where.host, where.port)
      const node = new UdpTransportCore(resolved, {
        socket,
        clock,
        defer: turn.defer,
        firstMessageId: 5000,
        epoch,
        ...(extra.logger === undefined ? {} : { logger: extra.logger.child({ host: id }) }),
      })
      nodes[id] = node
      sockets[id] = socket
      options[id] = resolved
      return node
    },
  }
}

/** Collects what a transport receives. */
export function inbox(transport: { onReceive(h: (from: string, data: Uint8Array) => void): void }) {
  const got: { from: string; data: Uint8Array }[] = []
  transport.onReceive((from, data) => got.push({ from, data: data.slice() }))
  return got
}

export function bytes(length: number, seed = 1): Uint8Array {
  const out = new Uint8Array(length)
  let x = seed >>> 0 || 1
  for (let i = 0; i < length; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    out[i] = x & 0xff
  }
  return out
}
