/**
 * The real clock: `performance.now()`, `setTimeout`, and `setImmediate` for a zero delay —
 * Node's `setTimeout(fn, 0)` waits at least 1 ms, which would put a millisecond on every
 * "at the end of this turn" (batch flushes, group commits, acknowledgements). It lives under
 * `src/adapters/`, the one folder the determinism lint rule lets touch ambient time.
 */
import type { Clock, Timer } from '../clock.js'

export function realClock(): Clock {
  return {
    now: () => performance.now(),
    setTimer(delayMs: number, callback: () => void): Timer {
      const delay = Number.isFinite(delayMs) && delayMs > 0 ? delayMs : 0
      if (delay === 0) {
        const immediate = setImmediate(callback)
        return { cancel: () => clearImmediate(immediate) }
      }
      const handle = setTimeout(callback, delay)
      return { cancel: () => clearTimeout(handle) }
    },
  }
}
