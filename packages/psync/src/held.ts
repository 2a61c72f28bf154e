/**
 * Messages that arrived before some of their predecessors. Each waits, counted by how many
 * deps it still lacks; when a missing message arrives, the ones waiting only for it are
 * released (and, as those are inserted, whatever waited on them).
 *
 * Bounded: at most `maxCount` messages and `maxBytes` payload bytes. A message that does not
 * fit is refused (the caller counts it); it is not lost for good, since its sender re-sends
 * unacknowledged messages and any later message depending on it will ask for it again.
 * Messages held longer than the expiry (say, a hostile message whose deps never exist) are
 * dropped by `expire`.
 */
import type { DataFrame, Ref } from './codec.js'

interface Waiting {
  readonly frame: DataFrame
  missing: number
  readonly since: number
  /**
   * Its sender is on hold and it was brought in because a message of a member not on hold
   * depended on it: the chain below it has been fetched (`markNeeded` descends once). Whether
   * it still counts is `isWanted`'s to say, decided afresh.
   */
  needed: boolean
}

const key = (member: number, seq: number) => `${member}:${seq}`

export class HeldMessages {
  private readonly waiting = new Map<string, Waiting>()
  /** Missing ref → keys of held messages waiting for it. */
  private readonly waiters = new Map<string, string[]>()
  private bytes = 0

  constructor(
    private readonly maxCount: number,
    private readonly maxBytes: number,
  ) {}

  get size(): number {
    return this.waiting.size
  }

  get heldBytes(): number {
    return this.bytes
  }

  has(member: number, seq: number): boolean {
    return this.waiting.has(key(member, seq))
  }

  /** The held frame, if any. */
  get(member: number, seq: number): DataFrame | undefined {
    return this.waiting.get(key(member, seq))?.frame
  }

  /** Holds `frame` until `missing` arrive; false when it does not fit the bounds. */
  add(frame: DataFrame, missing: readonly Ref[], now: number, needed = false): boolean {
    const k = key(frame.sender, frame.seq)
    if (this.waiting.has(k)) return true
    if (this.waiting.size >= this.maxCount || this.bytes + frame.payload.length > this.maxBytes)
      return false
    this.waiting.set(k, { frame, missing: missing.length, since: now, needed })
    this.bytes += frame.payload.length
    for (const ref of missing) {
      const mk = key(ref.member, ref.seq)
      const list = this.waiters.get(mk)
      if (list === undefined) this.waiters.set(mk, [k])
      else list.push(k)
    }
    return true
  }

  /**
   * A message that counts (its sender not on hold, or itself needed) waits for `member:seq`,
   * which is held here: it is needed too. Returns its frame when it was not needed before (the
   * caller then needs what it waits for in turn), else undefined.
   */
  markNeeded(member: number, seq: number): DataFrame | undefined {
    const w = this.waiting.get(key(member, seq))
    if (w === undefined || w.needed) return undefined
    w.needed = true
    return w.frame
  }

  /** `ref` is now present: returns the held frames that lack nothing more. */
  release(member: number, seq: number): DataFrame[] {
    const mk = key(member, seq)
    const list = this.waiters.get(mk)
    if (list === undefined) return []
    this.waiters.delete(mk)
    const ready: DataFrame[] = []
    for (const k of list) {
      const w = this.waiting.get(k)
      if (w === undefined) continue
      w.missing--
      if (w.missing === 0) {
        this.waiting.delete(k)
        this.bytes -= w.frame.payload.length
        ready.push(w.frame)
      }
    }
    return ready
  }

  /**
   * A held message that counts waits for `member:seq`: one whose sender is not on hold
   * (`onHold`), or one that such a message waits for in turn. (A held member's own later
   * messages waiting for it do not make it needed — unless a counting message waits for
   * them: they wait for the decision too.) Decided afresh on every call, never remembered: a
   * message needed by one of a member that has since been put on hold as well is no longer
   * needed — the member that needed it may not be an acceptor of the decision any more, so
   * no promise reports having it, and inserting it would put it above the cut.
   */
  isWanted(
    member: number,
    seq: number,
    onHold: (member: number) => boolean,
    seen: Set<string> = new Set(),
  ): boolean {
    const list = this.waiters.get(key(member, seq))
    if (list === undefined) return false
    // Down the chain too: a held member's message that a counting message waits for counts.
    return list.some((k) => {
      const w = this.waiting.get(k)
      if (w === undefined || seen.has(k)) return false
      seen.add(k)
      return !onHold(w.frame.sender) || this.isWanted(w.frame.sender, w.frame.seq, onHold, seen)
    })
  }

  /**
   * Takes out `member`'s held frames that no counting held message waits for (`hold`: from
   * now on they wait in the parked set instead), lowest seq first. `member` is on hold.
   */
  takeFrom(member: number, onHold: (member: number) => boolean): DataFrame[] {
    return this.dropWhere((f) => f.sender === member && !this.isWanted(member, f.seq, onHold)).sort(
      (a, b) => a.seq - b.seq,
    )
  }

  private drop(k: string, w: Waiting): void {
    this.waiting.delete(k)
    this.bytes -= w.frame.payload.length
  }

  /** Drops messages held since before `olderThan`; returns how many. */
  expire(olderThan: number): number {
    return this.dropWaiting((w) => w.since < olderThan).length
  }

  /** Drops the held messages `doomed` picks; returns their frames. */
  dropWhere(doomed: (frame: DataFrame) => boolean): DataFrame[] {
    return this.dropWaiting((w) => doomed(w.frame))
  }

  private dropWaiting(doomed: (w: Waiting) => boolean): DataFrame[] {
    const out: DataFrame[] = []
    for (const [k, w] of this.waiting)
      if (doomed(w)) {
        this.drop(k, w)
        out.push(w.frame)
      }
    if (out.length > 0) this.pruneWaiters()
    return out
  }

  /** Drops `member`'s messages above `cutSeq` (exclusion, masking); returns how many. */
  dropFrom(member: number, cutSeq: number): number {
    return this.dropWhere((f) => f.sender === member && f.seq > cutSeq).length
  }

  private pruneWaiters(): void {
    for (const [mk, list] of this.waiters) {
      const alive = list.filter((k) => this.waiting.has(k))
      if (alive.length === 0) this.waiters.delete(mk)
      else this.waiters.set(mk, alive)
    }
  }

  /** The deps of every held message (what must stay exact when pruning). */
  *heldDeps(): Iterable<readonly Ref[]> {
    for (const w of this.waiting.values()) yield w.frame.deps
  }

  /** The held messages' own refs. */
  heldIds(): Ref[] {
    return [...this.waiting.values()].map((w) => ({ member: w.frame.sender, seq: w.frame.seq }))
  }

  /** The refs some held message still waits for. */
  wanted(): Ref[] {
    const out: Ref[] = []
    for (const mk of this.waiters.keys()) {
      const at = mk.indexOf(':')
      out.push({ member: Number(mk.slice(0, at)), seq: Number(mk.slice(at + 1)) })
    }
    return out
  }
}
