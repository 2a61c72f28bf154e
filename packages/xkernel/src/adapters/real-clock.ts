/**
 * The real clock: `performance.now()`, `setTimeout`, and `setImmediate` for a zero delay —
 * Node's `setTimeout(fn, 0)` waits at least 1 ms, which would put a millisecond on every
 * "at the end of this turn" (batch flushes, group commits, acknowledgements). It lives under
 * `src/adapters/`, the one folder the determinism lint rule lets touch ambient time.
 */
import { type IntervalHistogram, monitorEventLoopDelay } from 'node:perf_hooks'
import type { Clock, Timer } from '../clock.js'

/** How long one window of event-loop delay counts toward `lag()` (ms). */
const LAG_WINDOW_MS = 2_000

export function realClock(): Clock {
  // Started on the first `lag()` call, so a process that never asks pays nothing.
  let histogram: IntervalHistogram | undefined
  let windowStart = 0
  let previousMaxMs = 0
  return {
    now: () => performance.now(),
    lag(): number {
      const now = performance.now()
      if (histogram === undefined) {
        histogram = monitorEventLoopDelay({ resolution: 10 })
        histogram.enable()
        windowStart = now
      }
      // The histogram's delays include its own resolution: subtract it.
      const currentMaxMs = Math.max(0, histogram.max / 1e6 - 10)
      if (now - windowStart >= LAG_WINDOW_MS) {
        previousMaxMs = currentMaxMs
        histogram.reset()
        windowStart = now
      }
      return Math.max(previousMaxMs, currentMaxMs)
    },
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
