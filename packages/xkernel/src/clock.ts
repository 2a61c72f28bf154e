/**
 * Time as protocol code sees it. Protocols never read the wall clock or call `setTimeout`
 * themselves (the linter refuses it): they use a `Clock`, which is the real one in
 * production (`realClock()`) and virtual time inside `@consul/sim`.
 */

/** A scheduled callback. `cancel()` is idempotent and safe after the timer fired. */
export interface Timer {
  cancel(): void
}

export interface Clock {
  /** Milliseconds on a monotonic scale (not the epoch); may be fractional. */
  now(): number
  /**
   * Runs `callback` once, `delayMs` from now (a negative or NaN delay counts as 0). Timers
   * due at the same instant run in the order they were set. A zero delay means "at the end
   * of this turn" (the real clock uses `setImmediate`, not a 1 ms `setTimeout`).
   */
  setTimer(delayMs: number, callback: () => void): Timer
  /**
   * How late this clock's host has been running recently (ms): the worst delay of its timers
   * or event loop within about the last two seconds, 0 when on time. Local health — a replica
   * whose own loop runs late must not accuse others of being slow (Failure Detection adds it
   * to its timeouts). Optional: a clock that cannot tell leaves it out. The real clock measures
   * it with `monitorEventLoopDelay`; the simulator's from its pauses and queueing.
   */
  lag?(): number
}

/**
 * A clock whose timers can all be cancelled at once: the host gives each session one, so
 * closing or crashing a session silences every timer it ever set.
 */
export class ScopedClock implements Clock {
  private readonly live = new Set<Timer>()
  private closed = false

  constructor(private readonly base: Clock) {}

  now(): number {
    return this.base.now()
  }

  lag(): number {
    return this.base.lag?.() ?? 0
  }

  setTimer(delayMs: number, callback: () => void): Timer {
    if (this.closed) return { cancel() {} }
    const live = this.live
    const timer = this.base.setTimer(delayMs, () => {
      live.delete(scoped)
      callback()
    })
    const scoped: Timer = {
      cancel() {
        if (live.delete(scoped)) timer.cancel()
      },
    }
    live.add(scoped)
    return scoped
  }

  /** Timers set through this clock and not yet fired or cancelled. */
  get pending(): number {
    return this.live.size
  }

  /** Cancels every pending timer; later `setTimer` calls do nothing. */
  close(): void {
    this.closed = true
    for (const timer of [...this.live]) timer.cancel()
  }
}
