/**
 * Stability: a message of member p is stable once every *other* counted member has sent a
 * message with it in its past — each of them then holds it durably (a member logs what it
 * received before anything it sends after it). Because p's messages form a chain, that is a
 * prefix of p's chain: `stableSeq[p]`, the lowest `knows(q, p)` over the counted q ≠ p.
 *
 * Invariants: `stableSeq[p]` only grows; an own message counts only once it is durable and on
 * the wire (`ownCap`); a message is never called stable while a counted member lacks it.
 */

/** What stability is computed from (the session's view of the graph). */
export interface StabilityInputs {
  /** Member q counts (neither masked nor excluded). */
  readonly active: readonly boolean[]
  /** The highest seq of member p in the past of member q's last (durable) message. */
  knows(q: number, p: number): number
  /** The highest seq of member p known here at all (used when no other member counts). */
  knownSeq(p: number): number
}

export class Stability {
  readonly stableSeq: number[]

  constructor(
    private readonly memberCount: number,
    private readonly self: number,
  ) {
    this.stableSeq = new Array<number>(memberCount).fill(0)
  }

  /** Message `seq` of member `p` is stable (the caller checks it exists or was pruned). */
  isStable(p: number, seq: number): boolean {
    return seq <= this.stableSeq[p]!
  }

  /**
   * Recomputes every member's stable prefix and calls `grew(member, before, seq)` for each that
   * grew (no allocation on the hot path). `ownCap` is the highest own seq that is durable and
   * on the wire.
   */
  advance(
    inputs: StabilityInputs,
    ownCap: number,
    grew: (member: number, before: number, seq: number) => void,
  ): void {
    const n = this.memberCount
    for (let p = 0; p < n; p++) {
      let low = Number.POSITIVE_INFINITY
      for (let q = 0; q < n; q++) {
        if (q === p || !inputs.active[q]) continue
        const k = inputs.knows(q, p)
        if (k < low) low = k
      }
      if (low === Number.POSITIVE_INFINITY) low = inputs.knownSeq(p)
      if (p === this.self && low > ownCap) low = ownCap
      const before = this.stableSeq[p]!
      if (low <= before) continue
      this.stableSeq[p] = low
      grew(p, before, low)
    }
  }
}
