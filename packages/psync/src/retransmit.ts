/**
 * What to ask for, and whom. A missing predecessor is first asked of the member that sent us
 * the message needing it (it had it when it sent), after a short delay that lets ordinary
 * reordering resolve itself; if it is still missing after the timeout, a random other
 * member is asked, a few times at the timeout, then with exponential backoff up to a ceiling
 * (`backoff.ts`). Requests to one member are
 * batched into one frame.
 *
 * Repair must converge in a few round trips once the network heals, even under heavy loss:
 * - `prompt`: a peer that just showed it has what we lack (it re-sent a message we hold for
 *   a missing predecessor, so it has that predecessor) is asked at once, whatever the backoff;
 * - `peerHeard`: a peer heard again after a silence resets the backoff of every want, and is
 *   asked next — the backoff grew while nobody could answer, not because nobody has it.
 *
 * Invariant: a ref is tracked from the moment something needs it until it arrives, nothing
 * needs it any more, or (wants with a limit: what a restart handshake named) it was asked
 * for `limit` times; every tracked ref has a due time.
 */
import type { Random } from '@consul/xkernel'
import { retryDelay } from './backoff.js'
import type { Ref } from './codec.js'

/**
 * Why a ref is wanted, which says how long: `held` — a held message needs it (dropped with
 * the last such message); `named` — a restart handshake's answer named it (asked at most
 * `limit` times: it may not exist); `own` — an own message lost from the log (until it is
 * back); `cut` — an excluded member's last counted message (until it is here).
 */
export type WantKind = 'held' | 'named' | 'own' | 'cut'

interface Want {
  readonly ref: Ref
  readonly kind: WantKind
  /** Whom to ask next; -1: anyone. */
  target: number
  attempts: number
  dueAt: number
  /** Asked at most this many times (restart wants); unbounded when undefined. */
  readonly limit: number | undefined
  /** When it was last asked for (a prompt waits at least `nackDelayMs` after it). */
  askedAt: number
}

export interface RetransmitTimings {
  readonly nackDelayMs: number
  readonly retransmitTimeoutMs: number
  readonly maxBackoffMs: number
}

const key = (member: number, seq: number) => `${member}:${seq}`

export class MissingTracker {
  private readonly wants = new Map<string, Want>()
  /** Wants dropped because they reached their limit, since the last call of `abandonedCount`. */
  private abandoned = 0

  constructor(
    private readonly timings: RetransmitTimings,
    private readonly self: number,
    private readonly random: Random,
  ) {}

  get size(): number {
    return this.wants.size
  }

  has(member: number, seq: number): boolean {
    return this.wants.has(key(member, seq))
  }

  /**
   * Starts tracking `refs`, to be asked of member `hint` first (-1: anyone). `limit` bounds how
   * often each is asked for (for what a peer merely named, which may not exist).
   */
  want(
    refs: readonly Ref[],
    hint: number,
    now: number,
    kind: WantKind = 'held',
    limit?: number,
  ): void {
    for (const ref of refs) {
      const k = key(ref.member, ref.seq)
      if (!this.wants.has(k)) {
        this.wants.set(k, {
          ref,
          kind,
          target: hint,
          attempts: 0,
          dueAt: now + this.timings.nackDelayMs,
          limit,
          askedAt: Number.NEGATIVE_INFINITY,
        })
      }
    }
  }

  resolved(member: number, seq: number): void {
    this.wants.delete(key(member, seq))
  }

  /** Keeps only the wants `stillWanted` accepts (held messages may have been dropped). */
  retain(stillWanted: (ref: Ref, kind: WantKind) => boolean): void {
    for (const [k, w] of this.wants) if (!stillWanted(w.ref, w.kind)) this.wants.delete(k)
  }

  /**
   * `peer` has the predecessors of `refs` for sure: ask it now (at most once per nack delay).
   * Returns the earliest due time it set, if any (so the caller re-arms without a scan).
   */
  prompt(refs: readonly Ref[], peer: number, now: number): number | undefined {
    let earliest: number | undefined
    for (const ref of refs) {
      const w = this.wants.get(key(ref.member, ref.seq))
      if (w === undefined || now - w.askedAt < this.timings.nackDelayMs) continue
      w.target = peer
      w.dueAt = Math.min(w.dueAt, now)
      if (earliest === undefined || w.dueAt < earliest) earliest = w.dueAt
    }
    return earliest
  }

  /** `peer` was heard again after a silence: restart every backoff, asking it next. */
  peerHeard(peer: number, now: number): void {
    for (const w of this.wants.values()) {
      if (w.attempts === 0) continue
      w.attempts = 1
      w.target = peer
      w.dueAt = Math.min(w.dueAt, Math.max(now, w.askedAt + this.timings.nackDelayMs))
    }
  }

  nextDueAt(): number | undefined {
    let next: number | undefined
    for (const w of this.wants.values()) if (next === undefined || w.dueAt < next) next = w.dueAt
    return next
  }

  /** How many wants reached their limit and were dropped since the last call. */
  abandonedCount(): number {
    const n = this.abandoned
    this.abandoned = 0
    return n
  }

  /**
   * The requests due at `now`, by member to ask. `candidates` are the members that may be
   * asked (active, not self).
   */
  due(now: number, candidates: readonly number[]): Map<number, Ref[]> {
    const out = new Map<number, Ref[]>()
    const others = candidates.filter((c) => c !== this.self)
    for (const [k, w] of this.wants) {
      if (w.dueAt > now) continue
      if (w.limit !== undefined && w.attempts >= w.limit) {
        this.wants.delete(k)
        this.abandoned++
        continue
      }
      let target = w.target
      if (target < 0 || target === this.self || !others.includes(target)) {
        if (others.length === 0) {
          w.dueAt = now + this.timings.maxBackoffMs
          continue
        }
        target = others[this.random.int(others.length)]!
      }
      const backoff = retryDelay(
        w.attempts,
        this.timings.retransmitTimeoutMs,
        this.timings.maxBackoffMs,
      )
      w.attempts++
      w.askedAt = now
      w.dueAt = now + backoff
      // After the first try, anyone: the hinted member may be the one that is unreachable.
      w.target = -1
      const list = out.get(target)
      if (list === undefined) out.set(target, [w.ref])
      else list.push(w.ref)
    }
    return out
  }
}
