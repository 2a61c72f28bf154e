/**
 * What to ask for, and whom. A missing predecessor is first asked of the member that sent us
 * the message needing it (it had it when it sent), after a short delay that lets ordinary
 * reordering resolve itself; if it is still missing after the timeout, a random other
 * member is asked, with exponential backoff up to a ceiling. Requests to one member are
 * batched into one frame.
 *
 * Invariant: a ref is tracked from the moment a held message needs it until it arrives (or
 * nothing waits for it any more); every tracked ref has a due time.
 */
import type { Random } from '@consul/xkernel'
import type { Ref } from './codec.js'

interface Want {
  readonly ref: Ref
  readonly hint: number
  attempts: number
  dueAt: number
}

export interface RetransmitTimings {
  readonly nackDelayMs: number
  readonly retransmitTimeoutMs: number
  readonly maxBackoffMs: number
}

const key = (ref: Ref) => `${ref.member}:${ref.seq}`

export class MissingTracker {
  private readonly wants = new Map<string, Want>()

  constructor(
    private readonly timings: RetransmitTimings,
    private readonly self: number,
    private readonly random: Random,
  ) {}

  get size(): number {
    return this.wants.size
  }

  /** Starts tracking `refs`, to be asked of member `hint` first. */
  want(refs: readonly Ref[], hint: number, now: number): void {
    for (const ref of refs) {
      const k = key(ref)
      if (!this.wants.has(k)) {
        this.wants.set(k, { ref, hint, attempts: 0, dueAt: now + this.timings.nackDelayMs })
      }
    }
  }

  resolved(member: number, seq: number): void {
    this.wants.delete(`${member}:${seq}`)
  }

  /** Keeps only the refs `stillWanted` accepts (held messages may have been dropped). */
  retain(stillWanted: (ref: Ref) => boolean): void {
    for (const [k, w] of this.wants) if (!stillWanted(w.ref)) this.wants.delete(k)
  }

  nextDueAt(): number | undefined {
    let next: number | undefined
    for (const w of this.wants.values()) if (next === undefined || w.dueAt < next) next = w.dueAt
    return next
  }

  /**
   * The requests due at `now`, by member to ask. `candidates` are the members that may be
   * asked (active, not self).
   */
  due(now: number, candidates: readonly number[]): Map<number, Ref[]> {
    const out = new Map<number, Ref[]>()
    for (const w of this.wants.values()) {
      if (w.dueAt > now) continue
      let target = w.hint
      if (w.attempts > 0 || target === this.self) {
        const others = candidates.filter((c) => c !== this.self)
        if (others.length === 0) {
          w.dueAt = now + this.timings.maxBackoffMs
          continue
        }
        target = others[this.random.int(others.length)]!
      }
      const backoff = Math.min(
        this.timings.maxBackoffMs,
        this.timings.retransmitTimeoutMs * 2 ** Math.min(w.attempts, 20),
      )
      w.attempts++
      w.dueAt = now + backoff
      const list = out.get(target)
      if (list === undefined) out.set(target, [w.ref])
      else list.push(w.ref)
    }
    return out
  }
}
