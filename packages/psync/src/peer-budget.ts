/**
 * Per-peer send budget: a token bucket per member, in bytes, refilled at `bytesPerSecond` up
 * to `burstBytes`, on the conversation's clock (virtual time in the simulator). What a peer's
 * frames make us send — retransmission answers, re-sends of own messages — is paid from that
 * peer's bucket, so one peer, however many requests it sends (a buggy member, one restarted
 * far behind, a replay the transport missed), cannot make us send more than the budget to it,
 * and never touches the budget of the others.
 *
 * A message may go when the bucket holds its cost, or — a message larger than the whole
 * burst — when the bucket is full; the bucket may then go below zero (a debt paid by the
 * refill). Each message costs its frame bytes plus `DATAGRAM_OVERHEAD` (the datagram's
 * headers and tag), so a flood of tiny messages is not free.
 *
 * Invariant: over any interval of `t` ms, the cost spent on one peer is at most
 * `burstBytes + bytesPerSecond · t / 1000`. With `bytesPerSecond` or `burstBytes` infinite
 * the budget is off: every `spend` succeeds and nothing is tracked.
 */

/** Charged per message on top of its frame: IP/UDP headers, the transport's header and tag. */
export const DATAGRAM_OVERHEAD = 64

export class PeerBudget {
  /** Tokens (bytes) each peer's bucket held at `updatedAt`. */
  private readonly tokens: number[]
  private readonly updatedAt: number[]
  readonly unlimited: boolean

  constructor(
    members: number,
    private readonly bytesPerSecond: number,
    private readonly burstBytes: number,
  ) {
    this.unlimited =
      bytesPerSecond === Number.POSITIVE_INFINITY || burstBytes === Number.POSITIVE_INFINITY
    this.tokens = new Array<number>(members).fill(burstBytes)
    this.updatedAt = new Array<number>(members).fill(Number.NEGATIVE_INFINITY)
  }

  private refill(q: number, now: number): number {
    const elapsed = now - this.updatedAt[q]!
    const tokens =
      elapsed === Number.POSITIVE_INFINITY
        ? this.burstBytes
        : Math.min(this.burstBytes, this.tokens[q]! + (this.bytesPerSecond * elapsed) / 1000)
    this.tokens[q] = tokens
    this.updatedAt[q] = now
    return tokens
  }

  /** Pays `cost` bytes to peer `q` if its bucket allows it now; false (nothing paid) if not. */
  spend(q: number, cost: number, now: number): boolean {
    if (this.unlimited) return true
    const tokens = this.refill(q, now)
    if (tokens < Math.min(cost, this.burstBytes)) return false
    this.tokens[q] = tokens - cost
    return true
  }

  /** Ms until a message costing `cost` may go to `q` (0: now). */
  waitMs(q: number, cost: number, now: number): number {
    if (this.unlimited) return 0
    const lacking = Math.min(cost, this.burstBytes) - this.refill(q, now)
    return lacking <= 0 ? 0 : (lacking * 1000) / this.bytesPerSecond
  }

  /** The cost of a message whose frame is `frameBytes` long. */
  static cost(frameBytes: number): number {
    return frameBytes + DATAGRAM_OVERHEAD
  }
}
