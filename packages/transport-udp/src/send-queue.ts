/**
 * The bounded send queue: a pool of datagram buffers of `maxDatagram` bytes, each either free,
 * open (being filled by the outbox) or handed to the socket until its send completes. A buffer
 * is reused only after the socket reports it done, so bytes are never changed under a send.
 *
 * Invariant: at most `capacity` buffers exist; when none is free, `acquire` says so and the
 * caller drops the message (`drop.sendQueueFull`) instead of queueing without bound. A
 * failed send is counted by its error code and never thrown.
 */
import type { DatagramSocket, SendDone } from './datagram-socket.js'

export interface Slot {
  readonly bytes: Uint8Array
  /** The completion callback for this buffer, made once so a send allocates no closure. */
  readonly done: SendDone
  /** Where the buffer was last sent (for error reports). */
  address: string
  port: number
}

export type SendErrorHandler = (error: Error, address: string, port: number) => void

export class SendQueue {
  private readonly free: Slot[] = []
  private created = 0
  private busy = 0
  private readonly idle: (() => void)[] = []
  /** Datagrams handed to the socket and datagrams/bytes sent (successfully or not). */
  datagrams = 0
  bytes = 0

  constructor(
    private readonly socket: DatagramSocket,
    private readonly capacity: number,
    private readonly datagramBytes: number,
    private readonly onError: SendErrorHandler,
  ) {}

  /** Buffers in use: open for bundling or waiting for the socket. */
  get inUse(): number {
    return this.busy
  }

  /** How many more buffers `acquire` can hand out now. */
  get available(): number {
    return this.capacity - this.busy
  }

  /** A free buffer, or `undefined` when the queue is full. */
  acquire(): Slot | undefined {
    const slot = this.free.pop() ?? this.create()
    if (slot !== undefined) this.busy++
    return slot
  }

  /** Returns a buffer that will not be sent. */
  release(slot: Slot): void {
    this.busy--
    this.free.push(slot)
    if (this.busy === 0 && this.idle.length > 0) {
      for (const resolve of this.idle.splice(0)) resolve()
    }
  }

  /** Resolves once no buffer is in use (every send handed to the socket has completed). */
  whenIdle(): Promise<void> {
    if (this.busy === 0) return Promise.resolve()
    return new Promise((resolve) => this.idle.push(resolve))
  }

  /** Sends `slot.bytes[0, length)`; the buffer comes back to the pool when the send is done. */
  submit(slot: Slot, length: number, port: number, address: string): void {
    this.datagrams++
    this.bytes += length
    slot.address = address
    slot.port = port
    this.socket.send(slot.bytes, length, port, address, slot.done)
  }

  private create(): Slot | undefined {
    if (this.created >= this.capacity) return undefined
    this.created++
    const slot: Slot = {
      bytes: new Uint8Array(this.datagramBytes),
      done: (error) => {
        this.release(slot)
        if (error !== null) this.onError(error, slot.address, slot.port)
      },
      address: '',
      port: 0,
    }
    return slot
  }
}
