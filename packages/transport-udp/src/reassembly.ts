/**
 * Reassembly of fragmented messages, bounded in time and memory. A partial message lives
 * until its last fragment arrives, `timeoutMs` after its first fragment arrived (then it is
 * dropped, counted `reassemblyTimeout`), or until room is needed for a newer one (the oldest
 * partial goes first, counted `reassemblyEvicted`). Fragments may arrive in any order; a
 * fragment seen twice is counted `duplicateFragment` and ignored.
 *
 * Invariant: the bytes held (each partial's message buffer, its fragment bitmap and a fixed
 * overhead) never exceed `maxBytes`, so a flood of fragments that never complete costs at most
 * `maxBytes` of memory and one timer. Time comes from the injected `Clock`.
 */
import type { Clock, Timer } from '@consul/xkernel'
import type { FragmentHeader } from './fragments.js'

export interface ReassemblyLimits {
  /** How long a partial message may wait for its missing fragments. */
  readonly timeoutMs: number
  /** The most memory partial messages may hold at once. */
  readonly maxBytes: number
}

export type ReassemblyDrop =
  | 'badFragment'
  | 'duplicateFragment'
  | 'fragmentTooLarge'
  | 'reassemblyTimeout'
  | 'reassemblyEvicted'

export type ReassemblyDropHandler = (
  reason: ReassemblyDrop,
  sender: number,
  messageId: number,
) => void

/** Bookkeeping charged to each partial besides its buffers, so tiny fragments cost too. */
export const PARTIAL_OVERHEAD_BYTES = 128

/** A sender index is below 2^21, so `sender * 2^32 + messageId` is an exact key. */
const SENDER_SHIFT = 0x1_0000_0000

interface Partial {
  readonly sender: number
  readonly messageId: number
  readonly total: number
  readonly chunkSize: number
  readonly count: number
  readonly have: Uint8Array
  readonly data: Uint8Array
  readonly deadline: number
  readonly cost: number
  received: number
}

/** What memory a partial message of `total` bytes in `count` fragments is charged. */
export function partialCost(total: number, count: number): number {
  return total + count + PARTIAL_OVERHEAD_BYTES
}

export class Reassembler {
  private readonly partials = new Map<number, Partial>()
  private used = 0
  private timer: Timer | undefined

  constructor(
    private readonly limits: ReassemblyLimits,
    private readonly clock: Clock,
    private readonly onDrop: ReassemblyDropHandler,
  ) {}

  /** Bytes partial messages hold now (never above `maxBytes`). */
  get bytesHeld(): number {
    return this.used
  }

  get partialCount(): number {
    return this.partials.size
  }

  /**
   * Takes the fragment `fragment` of `bytes` from sender number `sender` (a small
   * non-negative integer). Returns the whole message when this fragment completes it (the
   * caller owns it), otherwise `undefined`.
   */
  accept(sender: number, bytes: Uint8Array, fragment: FragmentHeader): Uint8Array | undefined {
    const key = sender * SENDER_SHIFT + fragment.messageId
    let partial = this.partials.get(key)
    if (partial === undefined) {
      const cost = partialCost(fragment.total, fragment.count)
      if (cost > this.limits.maxBytes) {
        this.onDrop('fragmentTooLarge', sender, fragment.messageId)
        return undefined
      }
      while (this.used + cost > this.limits.maxBytes) this.evictOldest('reassemblyEvicted')
      partial = {
        sender,
        messageId: fragment.messageId,
        total: fragment.total,
        chunkSize: fragment.chunkSize,
        count: fragment.count,
        have: new Uint8Array(fragment.count),
        data: new Uint8Array(fragment.total),
        deadline: this.clock.now() + this.limits.timeoutMs,
        cost,
        received: 0,
      }
      this.partials.set(key, partial)
      this.used += cost
      if (this.timer === undefined) this.arm()
    } else if (partial.total !== fragment.total || partial.chunkSize !== fragment.chunkSize) {
      // Same id, different shape: not a fragment of the message being rebuilt.
      this.onDrop('badFragment', sender, fragment.messageId)
      return undefined
    }
    if (partial.have[fragment.index] === 1) {
      this.onDrop('duplicateFragment', sender, fragment.messageId)
      return undefined
    }
    partial.have[fragment.index] = 1
    partial.data.set(
      bytes.subarray(fragment.chunkStart, fragment.chunkStart + fragment.chunkLength),
      fragment.offset,
    )
    partial.received++
    if (partial.received < partial.count) return undefined
    this.remove(key, partial)
    return partial.data
  }

  /** Forgets every partial message (without counting drops) and cancels the timer. */
  clear(): void {
    this.partials.clear()
    this.used = 0
    this.timer?.cancel()
    this.timer = undefined
  }

  private remove(key: number, partial: Partial): void {
    this.partials.delete(key)
    this.used -= partial.cost
    if (this.partials.size === 0) {
      this.timer?.cancel()
      this.timer = undefined
    }
  }

  private evictOldest(reason: ReassemblyDrop): void {
    // Map iteration is insertion order: the first entry is the oldest partial.
    const first = this.partials.entries().next()
    if (first.done === true) return
    const [key, partial] = first.value
    this.remove(key, partial)
    this.onDrop(reason, partial.sender, partial.messageId)
  }

  private arm(): void {
    const oldest = this.partials.values().next()
    if (oldest.done === true) return
    this.timer = this.clock.setTimer(oldest.value.deadline - this.clock.now(), () => {
      this.timer = undefined
      this.expire()
    })
  }

  private expire(): void {
    const now = this.clock.now()
    // Deadlines grow with insertion order, so expired partials are a prefix of the map.
    for (const partial of this.partials.values()) {
      if (partial.deadline > now) break
      this.evictOldest('reassemblyTimeout')
    }
    if (this.partials.size > 0 && this.timer === undefined) this.arm()
  }
}
