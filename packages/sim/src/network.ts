/**
 * The simulated network: one directed link per ordered pair of nodes, each with its own
 * delay distribution, loss, duplication and reordering, all changeable at any virtual time;
 * partitions (symmetric, one-way, isolate one node, majority/minority splits) and clogging
 * (datagrams held back until a moment, not lost). A partition also cuts datagrams already
 * in flight on the cut link, as a real cut would.
 *
 * Datagrams are copied per delivery, so every receiver owns its bytes (the Transport
 * contract) even when a send is duplicated.
 *
 * A link can also damage datagrams (`corrupt`): a few bits flipped, the datagram cut short,
 * or both. The endpoint models what a real transport does about it (ours puts a CRC32C or an
 * HMAC on every UDP datagram): the sending side computes a check over the bytes it sent, the
 * check travels beside the datagram (not inside it, so protocols see the same bytes as
 * before), and the receiving endpoint verifies the bytes that arrived, counting and dropping
 * any that fail (`droppedCorrupt`). A damaged datagram never reaches a protocol handler.
 *
 * Invariant: every damaged copy fails its check. Damage is a cut (the length no longer
 * matches) or 1–3 distinct flipped bits in a datagram of the sent length, and CRC32C has
 * Hamming distance 4 for data below 2^31 bits: it detects every error of up to 3 bits.
 */
import type { NodeId, Random, ReceiveHandler, Transport } from '@consul/xkernel'
import { type Distribution, describeDistribution, dist, sample } from './distributions.js'
import type { TraceHash } from './trace-hash.js'

export interface LinkConfig {
  /** One-way delay of a datagram. */
  readonly delay: Distribution
  /** Probability that a datagram is lost (0..1). */
  readonly loss: number
  /** Probability that a datagram arrives twice (0..1). */
  readonly duplicate: number
  /** Probability that a datagram is held back by up to `reorderMs` extra (0..1). */
  readonly reorder: number
  readonly reorderMs: number
  /**
   * Probability that a datagram arrives damaged (0..1); the receiving endpoint's integrity
   * check drops it (`droppedCorrupt`). Absent means 0, as in configurations and fault plans
   * written before corruption existed.
   */
  readonly corrupt?: number
}

export const defaultLink: LinkConfig = Object.freeze({
  delay: dist.uniform(0.5, 2),
  loss: 0,
  duplicate: 0,
  reorder: 0,
  reorderMs: 10,
  corrupt: 0,
})

export function validateLinkPatch(patch: Partial<LinkConfig>): void {
  for (const key of ['loss', 'duplicate', 'reorder', 'corrupt'] as const) {
    const v = patch[key]
    if (v !== undefined && !(v >= 0 && v <= 1)) {
      throw new RangeError(`link ${key} must be a probability in [0, 1], got ${v}`)
    }
  }
  if (
    patch.reorderMs !== undefined &&
    !(patch.reorderMs >= 0 && Number.isFinite(patch.reorderMs))
  ) {
    throw new RangeError(`link reorderMs must be a finite number >= 0, got ${patch.reorderMs}`)
  }
}

export function describeLink(link: LinkConfig): string {
  const parts = [`delay=${describeDistribution(link.delay)}`]
  if (link.loss > 0) parts.push(`loss=${link.loss.toFixed(3)}`)
  if (link.duplicate > 0) parts.push(`dup=${link.duplicate.toFixed(3)}`)
  if (link.reorder > 0) parts.push(`reorder=${link.reorder.toFixed(3)}/${link.reorderMs}ms`)
  if ((link.corrupt ?? 0) > 0) parts.push(`corrupt=${link.corrupt!.toFixed(3)}`)
  return parts.join(' ')
}

/** What the network needs from the simulation. */
export interface NetworkHost {
  readonly now: number
  /** Schedules a node-level event (deferred while the node is paused). */
  scheduleForNode(time: number, node: number, run: () => void): void
  isUp(node: number): boolean
  readonly hash: TraceHash
}

class Link {
  blocked = false
  clogUntil = 0
  constructor(public config: LinkConfig) {}
}

export interface NetworkStats {
  sent: number
  delivered: number
  droppedLoss: number
  droppedPartition: number
  droppedDown: number
  /** Datagrams whose integrity check failed at the receiving endpoint (damaged on the link). */
  droppedCorrupt: number
  duplicated: number
  reordered: number
  /** Datagram copies the link damaged (a damaged copy to a node that is down counts here too). */
  corrupted: number
  clogged: number
  bytes: number
}

/** What an endpoint counts; `stats()` returns a copy. */
interface EndpointCounters {
  sent: number
  received: number
  droppedCorrupt: number
}

/** The handler an endpoint registered, with the endpoint's counters. */
interface Receiver {
  readonly handler: ReceiveHandler
  readonly counters: EndpointCounters
}

/** `length` of a delivery that carries no integrity check (its link cannot corrupt). */
const UNCHECKED = -1

/**
 * CRC32C (Castagnoli, reflected polynomial 0x82F63B78), bytewise: the same function the UDP
 * transport puts on its datagrams. `crc32c('123456789') === 0xE3069283`.
 */
const CRC32C_TABLE = (() => {
  const table = new Int32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1
    table[n] = c
  }
  return table
})()

export function crc32c(data: Uint8Array): number {
  let c = -1
  for (let i = 0; i < data.length; i++) c = (c >>> 8) ^ CRC32C_TABLE[(c ^ data[i]!) & 0xff]!
  return ~c >>> 0
}

export class SimNetwork {
  private readonly links: Link[]
  private readonly index = new Map<NodeId, number>()
  private readonly receivers: (Receiver | undefined)[]
  readonly counters: NetworkStats = {
    sent: 0,
    delivered: 0,
    droppedLoss: 0,
    droppedPartition: 0,
    droppedDown: 0,
    droppedCorrupt: 0,
    duplicated: 0,
    reordered: 0,
    corrupted: 0,
    clogged: 0,
    bytes: 0,
  }

  constructor(
    private readonly host: NetworkHost,
    readonly nodes: readonly NodeId[],
    private readonly random: Random,
    defaults: Partial<LinkConfig> = {},
  ) {
    validateLinkPatch(defaults)
    const config = { ...defaultLink, ...defaults }
    nodes.forEach((id, i) => {
      this.index.set(id, i)
    })
    this.links = Array.from({ length: nodes.length * nodes.length }, () => new Link(config))
    this.receivers = nodes.map(() => undefined)
  }

  private indexOf(node: NodeId): number {
    const i = this.index.get(node)
    if (i === undefined)
      throw new RangeError(
        `unknown node ${JSON.stringify(node)}; nodes are ${this.nodes.join(', ')}`,
      )
    return i
  }

  private link(from: number, to: number): Link {
    return this.links[from * this.nodes.length + to]!
  }

  private pairs(
    from?: NodeId | readonly NodeId[],
    to?: NodeId | readonly NodeId[],
  ): [number, number][] {
    const pick = (sel: NodeId | readonly NodeId[] | undefined) =>
      sel === undefined
        ? this.nodes.map((_, i) => i)
        : (typeof sel === 'string' ? [sel] : sel).map((n) => this.indexOf(n))
    const out: [number, number][] = []
    for (const f of pick(from)) for (const t of pick(to)) if (f !== t) out.push([f, t])
    return out
  }

  /** Changes link parameters; without `from`/`to`, every link. */
  configure(
    patch: Partial<LinkConfig>,
    from?: NodeId | readonly NodeId[],
    to?: NodeId | readonly NodeId[],
  ): void {
    validateLinkPatch(patch)
    for (const [f, t] of this.pairs(from, to)) {
      const link = this.link(f, t)
      link.config = { ...link.config, ...patch }
    }
  }

  linkConfig(from: NodeId, to: NodeId): LinkConfig {
    return this.link(this.indexOf(from), this.indexOf(to)).config
  }

  /**
   * Splits the nodes into sides that cannot reach each other (both directions). Nodes not
   * named form one more side together.
   */
  partition(...sides: readonly (readonly NodeId[])[]): void {
    const side = new Map<number, number>()
    sides.forEach((members, s) => {
      for (const m of members) side.set(this.indexOf(m), s)
    })
    const n = this.nodes.length
    for (let f = 0; f < n; f++) {
      for (let t = 0; t < n; t++) {
        if (f === t) continue
        if ((side.get(f) ?? -1) !== (side.get(t) ?? -1)) this.link(f, t).blocked = true
      }
    }
  }

  /** One-way cut: `from` can no longer reach `to` (asymmetric partition). */
  block(from: NodeId, to: NodeId): void {
    for (const [f, t] of this.pairs(from, to)) this.link(f, t).blocked = true
  }

  unblock(from: NodeId, to: NodeId): void {
    for (const [f, t] of this.pairs(from, to)) this.link(f, t).blocked = false
  }

  /** Cuts `node` off from everyone, both ways. */
  isolate(node: NodeId): void {
    this.partition([node])
  }

  /** Splits into a random majority and minority (the minority has ⌊(n−1)/2⌋ nodes). */
  splitMajority(random: Random = this.random): { majority: NodeId[]; minority: NodeId[] } {
    const shuffled = [...this.nodes]
    for (let i = shuffled.length - 1; i > 0; i--) {
      const j = random.int(i + 1)
      ;[shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!]
    }
    const minoritySize = Math.floor((this.nodes.length - 1) / 2)
    const minority = shuffled.slice(0, minoritySize)
    const majority = shuffled.slice(minoritySize)
    this.partition(majority, minority)
    return { majority, minority }
  }

  /** Holds back every datagram on the link(s) until `durationMs` from now (none is lost). */
  clog(
    from: NodeId | readonly NodeId[] | undefined,
    to: NodeId | readonly NodeId[] | undefined,
    durationMs: number,
  ): void {
    if (!(durationMs >= 0 && Number.isFinite(durationMs))) {
      throw new RangeError(`clog duration must be a finite number >= 0, got ${durationMs}`)
    }
    for (const [f, t] of this.pairs(from, to))
      this.link(f, t).clogUntil = this.host.now + durationMs
  }

  /** Removes every partition, one-way cut and clog (link quality stays as configured). */
  heal(): void {
    for (const link of this.links) {
      link.blocked = false
      link.clogUntil = 0
    }
  }

  /** Whether `from` can currently reach `to`. */
  reachable(from: NodeId, to: NodeId): boolean {
    return !this.link(this.indexOf(from), this.indexOf(to)).blocked
  }

  /** The Transport a node's host uses. It outlives crashes: a restarted host reuses it. */
  endpoint(node: NodeId): Transport {
    const self = this.indexOf(node)
    const peers = this.nodes.filter((n) => n !== node)
    const counters: EndpointCounters = { sent: 0, received: 0, droppedCorrupt: 0 }
    let closed = false
    return {
      self: node,
      peers: () => peers,
      send: (to, data) => {
        if (closed) return
        const target = this.index.get(to)
        if (target === undefined || target === self) {
          throw new TypeError(`send to unknown peer ${JSON.stringify(to)} from ${node}`)
        }
        counters.sent++
        this.send(self, target, data)
      },
      broadcast: (data) => {
        if (closed) return
        for (let t = 0; t < this.nodes.length; t++) {
          if (t === self) continue
          counters.sent++
          this.send(self, t, data)
        }
      },
      onReceive: (handler) => {
        this.receivers[self] = { handler, counters }
      },
      stats: () => ({ ...counters }),
      close: async () => {
        closed = true
        this.receivers[self] = undefined
      },
    }
  }

  private send(from: number, to: number, data: Uint8Array): void {
    const c = this.counters
    const hash = this.host.hash
    c.sent++
    c.bytes += data.length
    hash.word(from)
    hash.word(to)
    hash.bytes(data)
    const link = this.link(from, to)
    if (link.blocked) {
      c.droppedPartition++
      return
    }
    const cfg = link.config
    const random = this.random
    if (cfg.loss > 0 && random.next() < cfg.loss) {
      c.droppedLoss++
      return
    }
    let copies = 1
    if (cfg.duplicate > 0 && random.next() < cfg.duplicate) {
      copies = 2
      c.duplicated++
    }
    // The sender's integrity check, only on a link that can damage datagrams: on a clean
    // link every check would pass, so the hot path skips it (and draws nothing more).
    const corrupt = cfg.corrupt ?? 0
    const length = corrupt > 0 ? data.length : UNCHECKED
    const check = corrupt > 0 ? this.checksum(data) : 0
    for (let i = 0; i < copies; i++) {
      let arrival = this.host.now + sample(cfg.delay, random)
      if (cfg.reorder > 0 && random.next() < cfg.reorder) {
        arrival += random.next() * cfg.reorderMs
        c.reordered++
      }
      if (link.clogUntil > arrival) {
        arrival = link.clogUntil
        c.clogged++
      }
      let bytes = data
      if (corrupt > 0 && data.length > 0 && random.next() < corrupt) {
        bytes = this.damage(data)
        c.corrupted++
      }
      // deliver() copies, so duplicates and broadcasts may share `data` until then.
      this.host.scheduleForNode(arrival, to, () => this.deliver(from, to, bytes, length, check))
    }
  }

  /** The integrity check value a sending endpoint computes (a method, so tests can watch it). */
  private checksum(data: Uint8Array): number {
    return crc32c(data)
  }

  /** A damaged copy of `data` (non-empty): 1–3 distinct bits flipped, cut short, or both. */
  private damage(data: Uint8Array): Uint8Array {
    const random = this.random
    const kind = random.int(3) // 0: flip bits, 1: cut short, 2: cut short and flip bits
    const bytes = kind === 0 ? data.slice() : data.slice(0, random.int(data.length))
    if (kind !== 1 && bytes.length > 0) {
      const count = 1 + random.int(3)
      const flipped: number[] = []
      while (flipped.length < count) {
        const bit = random.int(bytes.length * 8)
        if (flipped.includes(bit)) continue
        flipped.push(bit)
        bytes[bit >>> 3]! ^= 1 << (bit & 7)
      }
    }
    return bytes
  }

  private deliver(from: number, to: number, data: Uint8Array, length: number, check: number): void {
    const c = this.counters
    if (this.link(from, to).blocked) {
      c.droppedPartition++
      return
    }
    if (!this.host.isUp(to)) {
      c.droppedDown++
      return
    }
    const receiver = this.receivers[to]
    if (receiver === undefined) {
      c.droppedDown++
      return
    }
    if (length !== UNCHECKED && (data.length !== length || this.checksum(data) !== check)) {
      c.droppedCorrupt++
      receiver.counters.droppedCorrupt++
      return
    }
    c.delivered++
    receiver.counters.received++
    receiver.handler(this.nodes[from]!, data.slice())
  }
}
