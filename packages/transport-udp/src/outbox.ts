/**
 * The send side: per destination, an open datagram that small messages are appended to
 * (bundling), sealed and sent when the next message does not fit, at the end of the current
 * event-loop turn (`bundleMs` 0) or `bundleMs` after the first message waited (a timer on the
 * injected `Clock`). A message too large for a bundle first seals the destination's open
 * bundle (so it does not overtake earlier messages) and then goes out as fragments.
 *
 * Every datagram is numbered when it is sealed: the key id for its destination, the newest
 * key id this member holds, the epoch and the next counter go into the header just before
 * the trailer, so counters grow in the order datagrams reach the socket.
 *
 * Invariant: `enqueue` copies the message before it returns, never throws for a full queue
 * (the message is dropped and reported), and a destination has at most one open datagram, so
 * buffers in use ≤ destinations + datagrams in flight ≤ the send queue's capacity.
 * Invariant: no two datagrams of one outbox carry the same counter: it only grows, and once
 * it would pass 2^48 − 1 every message is dropped (`counterExhausted`) instead of wrapping.
 */
import type { Clock, Timer } from '@consul/xkernel'
import { BUNDLE_ENTRY_OVERHEAD, writeBundleEntry } from './bundler.js'
import { FLAG_FRAGMENT, HEADER_BYTES, MAX_U48, writeHeader, writeSequence } from './codec.js'
import type { Defer } from './datagram-socket.js'
import { FRAGMENT_HEADER_BYTES, fragmentCount, writeFragmentHeader } from './fragments.js'
import type { Integrity } from './integrity.js'
import type { SendQueue, Slot } from './send-queue.js'

/** Where datagrams go: a peer, or the multicast group. */
export interface Destination {
  readonly address: string
  readonly port: number
  /** The open bundle and how many of its bytes are used. */
  open: Slot | undefined
  used: number
  /** Waiting in the outbox's flush list. */
  dirty: boolean
  /** The key id datagrams to this destination are sealed with (0 without a key). */
  keyId: number
}

export function destination(address: string, port: number, keyId = 0): Destination {
  return { address, port, open: undefined, used: 0, dirty: false, keyId }
}

export interface OutboxOptions {
  readonly maxDatagram: number
  readonly integrity: Integrity
  readonly groupId: number
  readonly senderId: number
  readonly bundleMs: number
  readonly clock: Clock
  readonly defer: Defer
  readonly queue: SendQueue
  /** The first fragmented message's id (random per start, so a restart does not reuse ids). */
  readonly firstMessageId: number
  /** This incarnation's epoch, in every header. */
  readonly epoch: number
  /** The first datagram's counter (default 1; tests start near the end). */
  readonly firstCounter?: number
  /** A message was dropped because the send queue had no room. */
  readonly onQueueFull: (to: Destination, bytes: number) => void
  /** A message was dropped because the counter is used up (after 2^48 − 1 datagrams). */
  readonly onCounterExhausted: (to: Destination, bytes: number) => void
}

export class Outbox {
  /** Messages accepted for sending, and fragments sent. */
  messages = 0
  fragments = 0
  /** The largest message that travels in a bundle; larger ones are fragmented. */
  readonly maxBundled: number
  /** Bytes of a message each fragment carries (the last one may carry fewer). */
  readonly chunkSize: number

  private readonly bundleHeader = new Uint8Array(HEADER_BYTES)
  private readonly fragmentHeader = new Uint8Array(HEADER_BYTES)
  /** Where the trailer starts at the latest: a bundle's body must end here. */
  private readonly bodyLimit: number
  private readonly trailerBytes: number
  private readonly dirty: Destination[] = []
  private flushQueued = false
  private timer: Timer | undefined
  private nextMessageId: number
  /** The counter the next sealed datagram carries. */
  private nextCounter: number
  /** The newest key id this member holds, advertised in every header. */
  newestKeyId = 0
  private readonly flushCallback = () => this.flush()

  constructor(private readonly options: OutboxOptions) {
    const { integrity, groupId, senderId, maxDatagram } = options
    const auth = integrity.flags
    writeHeader(this.bundleHeader, auth, groupId, senderId)
    writeHeader(this.fragmentHeader, auth | FLAG_FRAGMENT, groupId, senderId)
    this.trailerBytes = integrity.trailerBytes
    this.bodyLimit = maxDatagram - integrity.trailerBytes
    this.maxBundled = this.bodyLimit - HEADER_BYTES - BUNDLE_ENTRY_OVERHEAD
    this.chunkSize = this.bodyLimit - HEADER_BYTES - FRAGMENT_HEADER_BYTES
    this.nextMessageId = options.firstMessageId >>> 0
    this.nextCounter = options.firstCounter ?? 1
  }

  /** Datagrams this outbox may still seal before its counter is used up. */
  get countersLeft(): number {
    return MAX_U48 - this.nextCounter + 1
  }

  /** How many datagrams a message of `length` bytes takes on its own. */
  datagramsFor(length: number): number {
    return length > this.maxBundled ? fragmentCount(length, this.chunkSize) : 1
  }

  /** Queues `data` for `to`; the caller may reuse `data` as soon as this returns. */
  enqueue(to: Destination, data: Uint8Array): void {
    const length = data.length
    if (length > this.maxBundled) {
      this.fragment(to, data)
      return
    }
    let slot = to.open
    if (slot !== undefined && to.used + BUNDLE_ENTRY_OVERHEAD + length > this.bodyLimit) {
      this.seal(to)
      slot = undefined
    }
    if (slot === undefined) {
      if (this.nextCounter > MAX_U48) {
        this.options.onCounterExhausted(to, length)
        return
      }
      slot = this.options.queue.acquire()
      if (slot === undefined) {
        this.options.onQueueFull(to, length)
        return
      }
      slot.bytes.set(this.bundleHeader)
      to.open = slot
      to.used = HEADER_BYTES
    }
    to.used = writeBundleEntry(slot.bytes, to.used, data)
    this.messages++
    if (!to.dirty) {
      to.dirty = true
      this.dirty.push(to)
      this.schedule()
    }
  }

  /** Seals and sends every open bundle now. */
  flush(): void {
    this.flushQueued = false
    this.timer?.cancel()
    this.timer = undefined
    const dirty = this.dirty
    for (let i = 0; i < dirty.length; i++) {
      const to = dirty[i]!
      to.dirty = false
      if (to.open !== undefined) this.seal(to)
    }
    dirty.length = 0
  }

  /** Bundles waiting to be flushed. */
  get openBundles(): number {
    let n = 0
    for (const to of this.dirty) if (to.open !== undefined) n++
    return n
  }

  /** Flushes what is open and stops the bundling timer. */
  close(): void {
    this.flush()
  }

  private schedule(): void {
    if (this.options.bundleMs === 0) {
      if (this.flushQueued) return
      this.flushQueued = true
      this.options.defer(this.flushCallback)
    } else if (this.timer === undefined) {
      this.timer = this.options.clock.setTimer(this.options.bundleMs, this.flushCallback)
    }
  }

  private seal(to: Destination): void {
    const slot = to.open!
    to.open = undefined
    const { integrity, queue } = this.options
    if (this.nextCounter > MAX_U48) {
      // Opened with counters left, but fragments used them up since.
      queue.release(slot)
      this.options.onCounterExhausted(to, to.used - HEADER_BYTES)
      return
    }
    this.number(slot.bytes, to)
    integrity.seal(slot.bytes, to.used, this.options.senderId)
    queue.submit(slot, to.used + this.trailerBytes, to.port, to.address)
  }

  private number(bytes: Uint8Array, to: Destination): void {
    writeSequence(bytes, to.keyId, this.newestKeyId, this.options.epoch, this.nextCounter++)
  }

  private fragment(to: Destination, data: Uint8Array): void {
    // Earlier small messages to `to` go first.
    if (to.open !== undefined) this.seal(to)
    const { queue, integrity } = this.options
    const total = data.length
    const chunkSize = this.chunkSize
    const count = fragmentCount(total, chunkSize)
    if (queue.available < count) {
      this.options.onQueueFull(to, total)
      return
    }
    if (this.countersLeft < count) {
      this.options.onCounterExhausted(to, total)
      return
    }
    const messageId = this.nextMessageId
    this.nextMessageId = (messageId + 1) >>> 0
    const bodyStart = HEADER_BYTES + FRAGMENT_HEADER_BYTES
    for (let index = 0; index < count; index++) {
      const slot = queue.acquire()!
      const bytes = slot.bytes
      bytes.set(this.fragmentHeader)
      writeFragmentHeader(bytes, HEADER_BYTES, messageId, total, chunkSize, index)
      const offset = index * chunkSize
      const end = Math.min(offset + chunkSize, total)
      bytes.set(data.subarray(offset, end), bodyStart)
      const length = bodyStart + (end - offset)
      this.number(bytes, to)
      integrity.seal(bytes, length, this.options.senderId)
      queue.submit(slot, length + this.trailerBytes, to.port, to.address)
    }
    this.messages++
    this.fragments += count
  }
}
