/**
 * The UDP transport proper, over an injected `DatagramSocket`, `Clock` and `Defer` (so tests
 * drive it deterministically with fakes; `udp()` passes the real ones). Outgoing messages go
 * through the outbox (bundling, fragmenting, the bounded send queue); incoming datagrams pass,
 * in order, the envelope checks, the sender and source-address checks, the trailer check, and
 * the body checks before any message reaches the receive handler.
 *
 * Invariant: a datagram reaches the handler only if every check passed; everything else is
 * counted by reason (`drop.<reason>`) and logged at debug level, and nothing a peer sends
 * can make this code throw. A handler that throws is counted (`handler.errors`) and logged,
 * and the rest of its bundle is still delivered.
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
  checkTrailer,
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
import { integrityFor } from './integrity.js'
import { type ResolvedOptions, senderIdOf } from './options.js'
import { type Destination, destination, Outbox } from './outbox.js'
import { partialCost, Reassembler } from './reassembly.js'
import { SendQueue } from './send-queue.js'

/** A `Transport` over UDP, with the addresses it is bound to. */
export interface UdpTransport extends Transport {
  /** The local address and port the socket is bound to (the real port when bound to 0). */
  address(): BoundAddress
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
}

interface Peer {
  readonly id: NodeId
  /** Position in `peers()`; keys the peer's partial messages. */
  readonly index: number
  readonly address: string
  readonly port: number
  readonly to: Destination
}

/** Counters present in `stats()` from the start, so its shape does not depend on history. */
const STABLE_COUNTERS = [
  'received.fragments',
  'received.reassembled',
  'received.unhandled',
  'send.errors',
  'socket.errors',
  'handler.errors',
]

/** How long `close()` waits for sends already handed to the socket. */
const CLOSE_DRAIN_MS = 1_000

export class UdpTransportCore implements UdpTransport {
  readonly self: NodeId
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
    this.selfSender = senderIdOf(options.self)
    this.log = services.logger
    options.peers.forEach((p, index) => {
      const peer: Peer = { ...p, index, to: destination(p.address, p.port) }
      this.byId.set(p.id, peer)
      this.bySender.set(senderIdOf(p.id), peer)
    })
    this.peerIds = Object.freeze(options.peers.map((p) => p.id))
    const integrity = integrityFor(options.key)
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
      onQueueFull: (to, bytes) =>
        this.drop('sendQueueFull', { to: `${to.address}:${to.port}`, bytes }),
    })
    this.reassembler = new Reassembler(options.reassembly, services.clock, (reason, sender, id) =>
      this.drop(reason, { from: this.peerIds[sender], messageId: id }),
    )
    const m = options.multicast
    this.multicastTo = m === undefined ? undefined : destination(m.group, m.port)
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
    const bad = checkTrailer(bytes, this.envelope.integrity)
    if (bad !== undefined) {
      this.dropDatagram(bad, bytes, address, port)
      return
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
