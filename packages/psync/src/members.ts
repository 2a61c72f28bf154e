/**
 * The member list of a conversation: who takes part, in the canonical order that gives each
 * member its wire index, and which of them count (neither masked out nor excluded). An
 * exclusion carries a cut: the member's messages up to it count everywhere, later ones are
 * void for good.
 *
 * Invariants: `names` is sorted (every member computes the same index for the same name,
 * whatever order the caller listed them in); `self` is never masked or excluded; a cut, once
 * set, never changes.
 */
import { type MessageId, messageId, type NodeId } from '@consul/xkernel'
import { PsyncError } from './errors.js'

export class MemberList {
  /** Every member, canonical order: a member's position is its wire index. */
  readonly names: readonly NodeId[]
  readonly self: number
  /** Member p counts for stability and waves (not masked, not excluded). */
  readonly active: boolean[]
  /** Exclusion cut per member (messages above it are void); undefined when not excluded. */
  readonly cut: (number | undefined)[]
  /**
   * Per member, the lowest seq seen building on a void message (∞ if none): that message and
   * all its sender's later ones (each has it in its causal past) can never be inserted here.
   */
  private readonly deadFrom: number[]
  private readonly index = new Map<NodeId, number>()
  private viewId = 0

  constructor(
    members: readonly NodeId[],
    self: NodeId,
    private readonly port: string,
  ) {
    this.names = [...members].sort()
    this.names.forEach((m, i) => {
      this.index.set(m, i)
    })
    const at = this.index.get(self)
    if (at === undefined)
      throw new PsyncError('NOT_A_MEMBER', `${String(self)} is not a member of ${port}`)
    this.self = at
    this.active = this.names.map(() => true)
    this.cut = this.names.map(() => undefined)
    this.deadFrom = this.names.map(() => Number.POSITIVE_INFINITY)
  }

  get size(): number {
    return this.names.length
  }

  indexOf(name: NodeId): number | undefined {
    return this.index.get(name)
  }

  /** The index of `name`; throws `NOT_A_MEMBER` for a name outside the list. */
  member(name: NodeId): number {
    const i = this.index.get(name)
    if (i === undefined)
      throw new PsyncError('NOT_A_MEMBER', `${String(name)} is not a member of ${this.port}`)
    return i
  }

  name(p: number): NodeId {
    return this.names[p]!
  }

  idOf(p: number, seq: number): MessageId {
    return messageId(this.names[p]!, seq)
  }

  /** A seq of member p that an exclusion made void: above its cut (for good). */
  isVoid(p: number, seq: number): boolean {
    const cut = this.cut[p]
    return cut !== undefined && seq > cut
  }

  /** A seq of member p at or above a message of p that builds on a void one. */
  isDead(p: number, seq: number): boolean {
    return seq >= this.deadFrom[p]!
  }

  /** A message that can never be inserted here: void (above a cut) or dead. */
  isLost(p: number, seq: number): boolean {
    return this.isVoid(p, seq) || this.isDead(p, seq)
  }

  /** Member p's message `seq` builds on a void message; false when already known. */
  markDead(p: number, seq: number): boolean {
    if (seq >= this.deadFrom[p]!) return false
    this.deadFrom[p] = seq
    return true
  }

  /** Masked out (and not excluded): its new messages are dropped until it is masked in. */
  isMasked(p: number): boolean {
    return !this.active[p] && this.cut[p] === undefined
  }

  /** The members that count, by name. */
  counted(): NodeId[] {
    return this.names.filter((_, i) => this.active[i])
  }

  /** The other members that count: whom to ask, whom to re-send to. */
  peers(): number[] {
    const out: number[] = []
    for (let p = 0; p < this.names.length; p++) if (p !== this.self && this.active[p]) out.push(p)
    return out
  }

  /** Masks `p` out; false when it already was. */
  maskOut(p: number): boolean {
    if (p === this.self) throw new PsyncError('INVALID_ARGUMENT', 'a member cannot mask itself out')
    if (!this.active[p]) return false
    this.active[p] = false
    return true
  }

  /** Masks `p` back in; false when it already counted. Throws for an excluded member. */
  maskIn(p: number): boolean {
    const cut = this.cut[p]
    if (cut !== undefined) {
      // Re-admission would need the excluded member to rewind its own chain to the cut and
      // an agreed wave to count it from: Recovery's job (a new incarnation), not a mask.
      throw new PsyncError(
        'INVALID_ARGUMENT',
        `${this.names[p]} was excluded with cut ${cut}: an excluded member rejoins through Recovery as a new incarnation; maskIn only undoes maskOut`,
      )
    }
    if (this.active[p]) return false
    this.active[p] = true
    return true
  }

  /** Checks an exclusion's arguments before anything changes; throws `INVALID_ARGUMENT`. */
  checkExclusion(p: number, cutSeq: number): void {
    if (p === this.self) throw new PsyncError('INVALID_ARGUMENT', 'a member cannot exclude itself')
    if (!Number.isSafeInteger(cutSeq) || cutSeq < 0) {
      throw new PsyncError('INVALID_ARGUMENT', `cut must be a sequence number >= 0, got ${cutSeq}`)
    }
    if (this.cut[p] !== undefined) {
      throw new PsyncError(
        'INVALID_ARGUMENT',
        `${this.names[p]} is already excluded (cut ${this.cut[p]}); an exclusion is decided once`,
      )
    }
  }

  exclude(p: number, cutSeq: number): void {
    this.checkExclusion(p, cutSeq)
    this.active[p] = false
    this.cut[p] = cutSeq
  }

  /** A fresh id for the next change of the counted list (trace records). */
  nextViewId(): number {
    return ++this.viewId
  }
}
