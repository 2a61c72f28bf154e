/**
 * Messages held back pending a decision (`PsyncControl.hold`): while Membership decides
 * whether a suspected member stays or is excluded, that member's messages that arrive are
 * parked here instead of being inserted — inserting one would let it into a wave the
 * decision may cut it out of. `release` inserts them after all (the member stays);
 * `exclude` inserts those up to the cut and drops the rest.
 *
 * Invariants: a parked message is in neither the graph nor the held set; at most `limit`
 * messages are parked over all members (beyond it a message is dropped, counted, and comes
 * again by repair once released); nothing is parked for a member that is not on hold.
 */
import type { KeptFrame } from './conversation.js'

export class ParkedMessages {
  private readonly byMember = new Map<number, Map<number, KeptFrame>>()
  private count = 0

  constructor(private readonly limit: number) {}

  get size(): number {
    return this.count
  }

  isOnHold(member: number): boolean {
    return this.byMember.has(member)
  }

  /** Starts parking `member`'s messages (no-op when already on hold). */
  hold(member: number): void {
    if (!this.byMember.has(member)) this.byMember.set(member, new Map())
  }

  has(member: number, seq: number): boolean {
    return this.byMember.get(member)?.has(seq) ?? false
  }

  /** Parks `frame` (its sender is on hold); false when the bound is reached. */
  park(frame: KeptFrame): boolean {
    const list = this.byMember.get(frame.sender)
    if (list === undefined || list.has(frame.seq)) return list !== undefined
    if (this.count >= this.limit) return false
    list.set(frame.seq, frame)
    this.count++
    return true
  }

  /**
   * Takes one parked message out (a message of a member not on hold depends on it: whoever
   * sent that one has it, so the decision's cut covers it), or `undefined`.
   */
  take(member: number, seq: number): KeptFrame | undefined {
    const list = this.byMember.get(member)
    const frame = list?.get(seq)
    if (frame === undefined) return undefined
    list!.delete(seq)
    this.count--
    return frame
  }

  /** Ends the hold on `member`; returns its parked messages, lowest seq first. */
  release(member: number): KeptFrame[] {
    const list = this.byMember.get(member)
    if (list === undefined) return []
    this.byMember.delete(member)
    this.count -= list.size
    return [...list.values()].sort((a, b) => a.seq - b.seq)
  }
}
