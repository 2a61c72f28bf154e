/**
 * The delivery rule of a Lamport total order. Psync delivers in causal order, so each
 * member's messages arrive here in the order it sent them, and a member's stamps strictly
 * increase. After delivering a stamp t from member q, q's future messages therefore have
 * stamps ≥ t + 1: q's *horizon* is (t + 1, q), the smallest key it can still send.
 *
 * A message with key k is *stable* once every member of the agreed list has a horizon above
 * k — nothing that orders before it can still arrive, so every replica delivers it at the
 * same point. This is the classic condition ("a message with a larger timestamp, or an
 * equal one from a larger id, has been delivered from every member") stated with the
 * strict-increase step made explicit: it lets the sender's own message count as its
 * promise, and lets a member whose last stamp is t − 1 pass (t, p) when its id is above p.
 *
 * Members excluded from the agreed list no longer count (their last messages are all
 * here by then: Psync's exclusion cut is the same everywhere).
 */
import type { NodeId } from '@consul/xkernel'
import { compareStamps, type Stamp } from './stamp.js'

export class StabilityTracker {
  /** The highest stamp delivered from each member. */
  private readonly last = new Map<NodeId, number>()

  /**
   * Records a delivered stamp from `sender`. Returns false (and records nothing) when it
   * does not exceed the sender's previous stamp: a broken sender, whose message cannot be
   * ordered safely.
   */
  observe(sender: NodeId, timestamp: number): boolean {
    if (timestamp <= (this.last.get(sender) ?? 0)) return false
    this.last.set(sender, timestamp)
    return true
  }

  /** The highest stamp delivered from `member` (0 before its first). */
  lastFrom(member: NodeId): number {
    return this.last.get(member) ?? 0
  }

  /** The smallest key `member` can still send. */
  horizon(member: NodeId): Stamp {
    return { timestamp: this.lastFrom(member) + 1, sender: member }
  }

  /** The first member of `members` that could still send something ordered before `stamp`. */
  blocking(stamp: Stamp, members: readonly NodeId[]): NodeId | undefined {
    return members.find((q) => compareStamps(this.horizon(q), stamp) <= 0)
  }

  /** Nothing ordered before `stamp` can still arrive from any of `members`. */
  isStable(stamp: Stamp, members: readonly NodeId[]): boolean {
    return this.blocking(stamp, members) === undefined
  }
}
