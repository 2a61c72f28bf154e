/**
 * The real clock: `performance.now()` and `setTimeout`. This file is one of the few the
 * determinism lint rule allows to touch ambient time.
 */
import type { Clock, Timer } from './clock.js'

export function realClock(): Clock {
  return {
    now: () => performance.now(),
    setTimer(delayMs: number, callback: () => void): Timer {
      const delay = Number.isFinite(delayMs) && delayMs > 0 ? delayMs : 0
      const handle = setTimeout(callback, delay)
      return { cancel: () => clearTimeout(handle) }
    },
  }
}
