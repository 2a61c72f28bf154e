/**
 * Test doubles for the host tests: a manual clock (time moves only when the test says so)
 * and a loopback network (a Map of node id → receive handler). They implement the public
 * `Clock` and `Transport` interfaces only, as a third party would.
 */
import type { Clock, NodeId, ReceiveHandler, Timer, Transport } from '../src/index.js'

interface PendingTimer {
  readonly due: number
  readonly seq: number
  readonly callback: () => void
  cancelled: boolean
}

/** Virtual time: timers run, in (due time, creation order), when `advance` passes them. */
export class ManualClock implements Clock {
  private time = 0
  private seq = 0
  private timers: PendingTimer[] = []

  now(): number {
    return this.time
  }

  setTimer(delayMs: number, callback: () => void): Timer {
    const delay = Number.isFinite(delayMs) && delayMs > 0 ? delayMs : 0
    const timer: PendingTimer = {
      due: this.time + delay,
      seq: this.seq++,
      callback,
      cancelled: false,
    }
    this.timers.push(timer)
    return {
      cancel: () => {
        timer.cancelled = true
      },
    }
  }

  /** Timers set and neither fired nor cancelled. */
  get pending(): number {
    return this.timers.filter((t) => !t.cancelled).length
  }

  /** Moves time forward by `ms`, running every timer that falls due on the way. */
  advance(ms: number): void {
    const target = this.time + ms
    for (;;) {
      const live = this.timers.filter((t) => !t.cancelled && t.due <= target)
      if (live.length === 0) break
      live.sort((x, y) => x.due - y.due || x.seq - y.seq)
      const next = live[0]!
      this.timers = this.timers.filter((t) => t !== next)
      this.time = next.due
      next.callback()
    }
    this.timers = this.timers.filter((t) => !t.cancelled)
    this.time = target
  }
}

export type Delivery = 'sync' | 'microtask'

/** A datagram network between in-process transports; no loss unless a test drops a node. */
export class LoopbackNetwork {
  private readonly handlers = new Map<NodeId, ReceiveHandler>()
  private readonly nodes: NodeId[] = []

  /**
   * `universe`: ids every transport lists as peers even before their hosts start (a static
   * peer map, as a real transport has). Without it, peers are the nodes made so far.
   */
  constructor(
    readonly delivery: Delivery = 'sync',
    private readonly universe: readonly NodeId[] = [],
  ) {}

  /** Everyone a transport of this network can address. */
  addressable(): readonly NodeId[] {
    return [...new Set([...this.universe, ...this.nodes])]
  }

  /** A transport for `self`; its peers are every other node of the network. */
  transport(self: NodeId, options: { peers?: () => readonly NodeId[] } = {}): LoopbackTransport {
    if (!this.nodes.includes(self)) this.nodes.push(self)
    return new LoopbackTransport(this, self, options.peers)
  }

  get members(): readonly NodeId[] {
    return this.nodes
  }

  /** Registers the handler of `self` (replacing any earlier one). */
  listen(self: NodeId, handler: ReceiveHandler): void {
    this.handlers.set(self, handler)
  }

  /** Delivers raw bytes to `to` as if `from` had sent them (what an attacker or a bug does). */
  inject(from: NodeId, to: NodeId, data: Uint8Array): void {
    this.handlers.get(to)?.(from, data)
  }

  deliver(from: NodeId, to: NodeId, data: Uint8Array): void {
    if (!this.addressable().includes(to)) throw new TypeError(`unknown member ${to}`)
    // The receiver owns its copy: a sender reusing its buffer must not change it.
    const copy = data.slice()
    if (this.delivery === 'sync') this.inject(from, to, copy)
    else queueMicrotask(() => this.inject(from, to, copy))
  }
}

export class LoopbackTransport implements Transport {
  readonly counts = { sent: 0, broadcasts: 0, received: 0 }
  closed = false

  constructor(
    private readonly network: LoopbackNetwork,
    readonly self: NodeId,
    private readonly peerList?: () => readonly NodeId[],
  ) {}

  peers(): readonly NodeId[] {
    return this.peerList?.() ?? this.network.addressable().filter((id) => id !== this.self)
  }

  send(to: NodeId, data: Uint8Array): void {
    if (this.closed) return
    this.counts.sent++
    this.network.deliver(this.self, to, data)
  }

  broadcast(data: Uint8Array): void {
    if (this.closed) return
    this.counts.broadcasts++
    for (const peer of this.peers()) {
      this.counts.sent++
      this.network.deliver(this.self, peer, data)
    }
  }

  onReceive(handler: ReceiveHandler): void {
    this.network.listen(this.self, (from, data) => {
      if (this.closed) return
      this.counts.received++
      handler(from, data)
    })
  }

  stats(): Record<string, number> {
    return { ...this.counts }
  }

  async close(): Promise<void> {
    this.closed = true
  }
}

/** Resolves after every queued microtask (and the ones they queue) has run. */
export function flushMicrotasks(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}
