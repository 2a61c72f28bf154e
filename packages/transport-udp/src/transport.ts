/**
 * The UDP transport proper, over an injected `DatagramSocket`, `Clock` and `Defer` (so tests
 * drive it deterministically with fakes; `udp()` passes the real ones). Outgoing messages go
 * through the outbox (bundling, fragmenting, the bounded send queue); incoming datagrams pass,
 * in order, the envelope checks, the sender and source-address checks, the key id, the
 * sender's replay window (read-only), the trailer check (MAC, AEAD tag or CRC), then the
 * window is advanced and the body checks run before any message reaches the receive handler.
 * Everything before the trailer check is a few comparisons and map lookups, so hostile input
 * is dropped before any cryptography, and state is kept only for configured peers.
 *
 * Keys: each peer's datagrams advertise the newest key id it holds; this member seals what
 * it sends to a peer with the newest id both hold (the oldest of its own ring until the peer
 * has been heard from), so a keyring rotation never makes a member send with a key its peer
 * does not have yet.
 *
 * Invariant: a datagram reaches the handler only if every check passed, and each authentic
 * datagram at most once (its (epoch, counter) is committed to the sender's window before
 * delivery); everything else is counted by reason (`drop.<reason>`) and logged at debug
 * level, and nothing a peer sends can make this code throw. A handler that throws is counted
 * (`handler.errors`) and logged, and the rest of its bundle is still delivered.
 */
import {
  type Clock,
  Counters,
  type Logger,
  type NodeId,
  type ReceiveHandler,
  type Transport,
} from '@consul/xkernel'
import { countBundle, forEachInBundle } from './bundler.js'
import {
  type DatagramHeader,
  DROP_REASONS,
  type DropReason,
  type EnvelopeContext,
  FLAG_FRAGMENT,
  HEADER_BYTES,
  parseHeader,
} from './codec.js'
import type { BoundAddress, DatagramSocket, Defer } from './datagram-socket.js'
import { UdpTransportError } from './errors.js'
import { fragmentCount, MAX_FRAGMENTS, parseFragment } from './fragments.js'
import { type GroupKey, type Integrity, integrityFor } from './integrity.js'
import { checkKeys, type ResolvedOptions, senderIdOf } from './options.js'
import { type Destination, destination, Outbox } from './outbox.js'
import { partialCost, Reassembler } from './reassembly.js'
import { ReplayWindow } from './replay-window.js'
import { SendQueue } from './send-queue.js'

/** Which keys a member sends with, and what each peer said it holds. */
export interface KeyStatus {
  /** The key ids this member holds, ascending (empty without a key). */
  readonly held: readonly number[]
  /** Per peer: the key id sent with, and the newest id the peer advertised (if heard). */
  readonly peers: Readonly<
    Record<NodeId, { readonly sendKeyId: number; readonly peerNewest: number | undefined }>
  >
}

/** A `Transport` over UDP, with the addresses it is bound to. */
export interface UdpTransport extends Transport {
  /** The local address and port the socket is bound to (the real port when bound to 0). */
  address(): BoundAddress
  /** This incarnation's epoch (in every header; peers refuse lower ones from this member). */
  readonly epoch: number
  /**
   * Replaces the keyring at run time (a key rotation without downtime, see the README):
   * validated like the `keys` option, throws `UdpTransportError('INVALID_KEY')` if it is
   * wrong or if this transport was started without a key.
   */
  setKeys(keys: readonly GroupKey[]): void
  /** The keys held and used per peer: a rotation may retire the old key once every peer's
   * `peerNewest` is the new id. */
  keyStatus(): KeyStatus
}

/** The services the core runs on; `udp()` passes the real ones. */
export interface TransportServices {
  readonly socket: DatagramSocket
  /** The socket bound to the multicast group's port, when `multicast` is set. */
  readonly multicastSocket?: DatagramSocket
  readonly clock: Clock
  readonly defer: Defer
  readonly logger?: Logger
  /** The first fragmented message's id. */
  readonly firstMessageId: number
  /** This incarnation's epoch, 1 … 2^48 − 1 (`udp()` resolves it from the options). */
  readonly epoch: number
  /** The first datagram's counter (default 1; tests use it to reach the end). */
  readonly firstCounter?: number
}

interface Peer {
  readonly id: NodeId
  /** Position in `peers()`; keys the peer's partial messages. */
  readonly index: number
  readonly address: string
  readonly port: number
  readonly to: Destination
  /** Which of this peer's datagrams were accepted; `undefined` with `replayWindow: 0`. */
  readonly window: ReplayWindow | undefined
  /** The newest key id the peer advertised in its latest datagram; -1 before any. */
  advertised: number
  /** When a stale epoch of this peer was last verified and reported (-Infinity: never). */
  staleReportedAt: number
}

/** At most one stale-epoch warning (and its extra trailer check) per peer this often. */
const STALE_EPOCH_REPORT_MS = 10_000

/** Counters present in `stats()` from the start, so its shape does not depend on history. */
const STABLE_COUNTERS = [
  'received.fragments',
  'received.reassembled',
  'received.unhandled',
  'send.errors',
  'socket.errors',
  'handler.errors',
  'peer.restarts',
]

/** How long `close()` waits for sends already handed to the socket. */
const CLOSE_DRAIN_MS = 1_000

export class UdpTransportCore implements UdpTransport {
  readonly self: NodeId
  readonly epoch: number
  private readonly integrity: Integrity
  private readonly peerIds: readonly NodeId[]
  private readonly byId = new Map<NodeId, Peer>()
  private readonly bySender = new Map<number, Peer>()
  private readonly selfSender: number
  private readonly envelope: EnvelopeContext
  private readonly counters = new Counters()
  private readonly queue: SendQueue
  private readonly outbox: Outbox
  private readonly reassembler: Reassembler
  private readonly multicastTo: Destination | undefined
  private readonly log: Logger | undefined
  private handler: ReceiveHandler | undefined
  private closing: Promise<void> | undefined
  // Hot counters as fields; `stats()` merges them with `counters`.
  private receivedDatagrams = 0
  private receivedBytes = 0
  private receivedMessages = 0

  constructor(
    private readonly options: ResolvedOptions,
    private readonly services: TransportServices,
  ) {
    this.self = options.self
    this.epoch = services.epoch
    this.selfSender = senderIdOf(options.self)
    this.log = services.logger
    options.peers.forEach((p, index) => {
      const peer: Peer = {
        ...p,
        index,
        to: destination(p.address, p.port),
        window: options.replayWindow === 0 ? undefined : new ReplayWindow(options.replayWindow),
        advertised: -1,
        staleReportedAt: Number.NEGATIVE_INFINITY,
      }
      this.byId.set(p.id, peer)
      this.bySender.set(senderIdOf(p.id), peer)
    })
    this.peerIds = Object.freeze(options.peers.map((p) => p.id))
    const integrity = integrityFor(options.keys, options.encrypt)
    this.integrity = integrity
    this.envelope = { groupId: options.groupId, integrity, maxDatagram: options.maxDatagram }
    this.queue = new SendQueue(
      services.socket,
      options.maxSendQueue,
      options.maxDatagram,
      (error, address, port) => this.sendFailed(error, address, port),
    )
    this.outbox = new Outbox({
      maxDatagram: options.maxDatagram,
      integrity,
      groupId: options.groupId,
      senderId: this.selfSender,
      bundleMs: options.bundleMs,
      clock: services.clock,
      defer: services.defer,
      queue: this.queue,
      firstMessageId: services.firstMessageId,
      epoch: services.epoch,
      ...(services.firstCounter === undefined ? {} : { firstCounter: services.firstCounter }),
      onQueueFull: (to, bytes) =>
        this.drop('sendQueueFull', { to: `${to.address}:${to.port}`, bytes }),
      onCounterExhausted: (to, bytes) =>
        this.drop('counterExhausted', { to: `${to.address}:${to.port}`, bytes }),
    })
    this.reassembler = new Reassembler(options.reassembly, services.clock, (reason, sender, id) =>
      this.drop(reason, { from: this.peerIds[sender], messageId: id }),
    )
    const m = options.multicast
    this.multicastTo = m === undefined ? undefined : destination(m.group, m.port)
    this.chooseKeys()
    for (const reason of DROP_REASONS) this.counters.set(`drop.${reason}`, 0)
    for (const name of STABLE_COUNTERS) this.counters.set(name, 0)
    const onDatagram = (bytes: Uint8Array, address: string, port: number) =>
      this.receive(bytes, address, port)
    services.socket.onDatagram(onDatagram)
    services.multicastSocket?.onDatagram(onDatagram)
    const onSocketError = (error: Error) => {
      this.counters.inc('socket.errors')
      this.log?.warn('udp socket error', { error: error.message })
    }
    services.socket.onError(onSocketError)
    services.multicastSocket?.onError(onSocketError)
  }

  peers(): readonly NodeId[] {
    return this.peerIds
  }

  address(): BoundAddress {
    return this.services.socket.address()
  }

  send(to: NodeId, data: Uint8Array): void {
    const peer = this.byId.get(to)
    if (peer === undefined) {
      if (to === this.self) throw new TypeError(`${this.self} cannot send to itself`)
      throw new TypeError(
        `send to unknown member ${JSON.stringify(to)}: ${this.self} knows ${this.peerIds.map((p) => JSON.stringify(p)).join(', ') || 'no peers'}`,
      )
    }
    this.checkData(data)
    if (this.closing !== undefined) {
      this.drop('closed', { to })
      return
    }
    this.outbox.enqueue(peer.to, data)
  }

  broadcast(data: Uint8Array): void {
    this.checkData(data)
    if (this.closing !== undefined) {
      this.drop('closed', { to: '*' })
      return
    }
    if (this.multicastTo !== undefined) {
      this.outbox.enqueue(this.multicastTo, data)
      return
    }
    for (const peer of this.byId.values()) this.outbox.enqueue(peer.to, data)
  }

  setKeys(keys: readonly GroupKey[]): void {
    if (this.integrity.mode === 'crc') {
      throw new UdpTransportError(
        'INVALID_KEY',
        'setKeys needs a transport started with key or keys (this one uses CRC32C, and every member must agree on the mode)',
      )
    }
    this.integrity.setKeys(checkKeys(keys))
    this.chooseKeys()
    this.log?.info('udp keyring replaced', { held: this.integrity.keyIds() })
  }

  keyStatus(): KeyStatus {
    const peers: Record<NodeId, { sendKeyId: number; peerNewest: number | undefined }> = {}
    for (const peer of this.byId.values()) {
      peers[peer.id] = {
        sendKeyId: peer.to.keyId,
        peerNewest: peer.advertised < 0 ? undefined : peer.advertised,
      }
    }
    return { held: this.integrity.keyIds(), peers }
  }

  /**
   * Sets the key each destination is sealed with: the newest id this member holds that is
   * not newer than the newest the peer advertised; the oldest held while the peer has not
   * been heard from (or holds only older ids). Multicast reaches everyone: the oldest of those.
   */
  private chooseKeys(): void {
    const held = this.integrity.keyIds()
    if (held.length === 0) return
    this.outbox.newestKeyId = held[held.length - 1]!
    let lowest = 255
    for (const peer of this.byId.values()) {
      let id = held[0]!
      if (peer.advertised >= 0) for (const k of held) if (k <= peer.advertised) id = k
      peer.to.keyId = id
      if (id < lowest) lowest = id
    }
    if (this.multicastTo !== undefined) this.multicastTo.keyId = lowest
  }

  onReceive(handler: ReceiveHandler): void {
    if (typeof handler !== 'function') throw new TypeError('onReceive needs a function')
    this.handler = handler
  }

  stats(): Record<string, number> {
    const c = this.counters
    c.set('sent.messages', this.outbox.messages)
    c.set('sent.fragments', this.outbox.fragments)
    c.set('sent.datagrams', this.queue.datagrams)
    c.set('sent.bytes', this.queue.bytes)
    c.set('received.datagrams', this.receivedDatagrams)
    c.set('received.bytes', this.receivedBytes)
    c.set('received.messages', this.receivedMessages)
    c.set('send.queued', this.queue.inUse)
    c.set('reassembly.partials', this.reassembler.partialCount)
    c.set('reassembly.bytes', this.reassembler.bytesHeld)
    const held = this.integrity.keyIds()
    if (held.length > 0) {
      const newest = held[held.length - 1]!
      let behind = 0
      for (const peer of this.byId.values()) if (peer.advertised < newest) behind++
      c.set('keys.newest', newest)
      c.set('keys.peersBehind', behind)
    }
    return c.snapshot()
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown()
    return this.closing
  }

  private async shutdown(): Promise<void> {
    this.outbox.close()
    // Node drops a send still resolving its address when the socket closes: wait for them.
    let timer: { cancel(): void } | undefined
    await Promise.race([
      this.queue.whenIdle(),
      new Promise<void>((resolve) => {
        timer = this.services.clock.setTimer(CLOSE_DRAIN_MS, resolve)
      }),
    ])
    timer?.cancel()
    this.reassembler.clear()
    this.handler = undefined
    await Promise.all([this.services.socket.close(), this.services.multicastSocket?.close()])
  }

  private checkData(data: Uint8Array): void {
    if (!(data instanceof Uint8Array)) {
      throw new TypeError(
        `message must be a Uint8Array, got ${data === null ? 'null' : typeof data}`,
      )
    }
    const length = data.length
    if (length <= this.outbox.maxBundled) return
    // A receiver with the same options must be able to hold it, and the queue to take it all
    // at once; the fragment index is a u16.
    const count = fragmentCount(length, this.outbox.chunkSize)
    const limit =
      count > MAX_FRAGMENTS
        ? `${MAX_FRAGMENTS} fragments`
        : count > this.options.maxSendQueue
          ? `maxSendQueue (${this.options.maxSendQueue} datagrams)`
          : partialCost(length, count) > this.options.reassembly.maxBytes
            ? `reassembly.maxBytes (${this.options.reassembly.maxBytes})`
            : undefined
    if (limit !== undefined) {
      throw new UdpTransportError(
        'MESSAGE_TOO_LARGE',
        `a message of ${length} bytes (${count} fragments) exceeds ${limit}; split the message, or raise reassembly.maxBytes (on every member) and maxSendQueue`,
      )
    }
  }

  private receive(bytes: Uint8Array, address: string, port: number): void {
    this.receivedDatagrams++
    this.receivedBytes += bytes.length
    if (this.closing !== undefined) return
    const header = parseHeader(bytes, this.envelope)
    if (typeof header === 'string') {
      this.dropDatagram(header, bytes, address, port)
      return
    }
    const peer = this.bySender.get(header.senderId)
    if (peer === undefined) {
      const reason = header.senderId === this.selfSender ? 'ownDatagram' : 'unknownSender'
      this.dropDatagram(reason, bytes, address, port)
      return
    }
    if (address !== peer.address || port !== peer.port) {
      this.dropDatagram('addressMismatch', bytes, address, port)
      return
    }
    const integrity = this.integrity
    if (!integrity.hasKey(header.keyId)) {
      this.dropDatagram('unknownKey', bytes, address, port)
      return
    }
    const window = peer.window
    const verdict = window?.check(header.epoch, header.counter) ?? 'new'
    if (verdict !== 'new' && verdict !== 'newEpoch') {
      if (verdict === 'staleEpoch') this.staleEpoch(peer, header, bytes)
      this.dropDatagram(verdict, bytes, address, port)
      return
    }
    if (!integrity.open(bytes, header.senderId)) {
      this.dropDatagram(integrity.authenticated ? 'badMac' : 'badCrc', bytes, address, port)
      return
    }
    if (window !== undefined) {
      const previous = window.epoch
      window.commit(header.epoch, header.counter)
      if (verdict === 'newEpoch' && previous >= 0) this.peerRestarted(peer, previous, header.epoch)
    }
    // The newest datagram speaks for what the peer holds now (a reordered older one may not).
    if (
      header.newestKeyId !== peer.advertised &&
      (window === undefined || window.top === header.counter)
    ) {
      peer.advertised = header.newestKeyId
      this.chooseKeys()
    }
    if ((header.flags & FLAG_FRAGMENT) !== 0) {
      const fragment = parseFragment(bytes, HEADER_BYTES, header.bodyEnd)
      if (fragment === undefined) {
        this.dropDatagram('badFragment', bytes, address, port)
        return
      }
      this.counters.inc('received.fragments')
      const message = this.reassembler.accept(peer.index, bytes, fragment)
      if (message !== undefined) {
        this.counters.inc('received.reassembled')
        this.deliver(peer.id, message)
      }
      return
    }
    if (countBundle(bytes, HEADER_BYTES, header.bodyEnd) < 0) {
      this.dropDatagram('badBundle', bytes, address, port)
      return
    }
    const from = peer.id
    const buffer = bytes.buffer
    const base = bytes.byteOffset
    forEachInBundle(bytes, HEADER_BYTES, header.bodyEnd, (offset, length) =>
      // A plain Uint8Array view (not a Node Buffer, whose slice() does not copy).
      this.deliver(from, new Uint8Array(buffer, base + offset, length)),
    )
  }

  private peerRestarted(peer: Peer, previous: number, epoch: number): void {
    this.counters.inc('peer.restarts')
    this.log?.info('peer restarted: new epoch', { from: peer.id, previous, epoch })
  }

  /**
   * A datagram of `peer` from an epoch older than the one seen: a replay of an earlier
   * incarnation, or the peer restarted with a lower epoch (its clock stepped back, or its
   * epoch store was lost). It is refused either way; once per `STALE_EPOCH_REPORT_MS` the
   * trailer is checked so an authentic one is reported with its reason (a forgery is not).
   */
  private staleEpoch(peer: Peer, header: DatagramHeader, bytes: Uint8Array): void {
    const now = this.services.clock.now()
    if (now - peer.staleReportedAt < STALE_EPOCH_REPORT_MS) return
    peer.staleReportedAt = now
    if (this.log === undefined || !this.integrity.open(bytes, header.senderId)) return
    this.log.warn('refusing datagrams of a member with a lower epoch than seen before', {
      from: peer.id,
      epoch: header.epoch,
      seen: peer.window?.epoch,
      reason:
        'a replay of an earlier incarnation, or the member restarted with a lower epoch (its clock stepped back or its epoch store was lost); restart it with an epoch above the one seen',
    })
  }

  private deliver(from: NodeId, message: Uint8Array): void {
    const handler = this.handler
    if (handler === undefined) {
      this.counters.inc('received.unhandled')
      return
    }
    this.receivedMessages++
    try {
      handler(from, message)
    } catch (error) {
      this.counters.inc('handler.errors')
      this.log?.error('receive handler threw', {
        from,
        error: error instanceof Error ? error.message : String(error),
      })
    }
  }

  private dropDatagram(reason: DropReason, bytes: Uint8Array, address: string, port: number) {
    this.counters.inc(`drop.${reason}`)
    if (this.log?.enabled('debug')) {
      this.log.debug('dropped datagram', {
        reason,
        from: `${address}:${port}`,
        bytes: bytes.length,
      })
    }
  }

  private drop(reason: DropReason, fields: Record<string, unknown>): void {
    this.counters.inc(`drop.${reason}`)
    if (this.log?.enabled('debug')) this.log.debug('dropped message', { reason, ...fields })
  }

  private sendFailed(error: Error, address: string, port: number): void {
    const code = (error as { code?: unknown }).code
    this.counters.inc('send.errors')
    this.counters.inc(`send.error.${typeof code === 'string' ? code : 'unknown'}`)
    this.log?.debug('send failed', { to: `${address}:${port}`, error: error.message })
  }
}
