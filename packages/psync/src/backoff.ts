/**
 * The retry schedule of every Psync repair (re-sending own messages to a peer that has not
 * acknowledged them, asking for a missing predecessor): the first `FAST_TRIES` retries come at
 * the base interval, then the interval doubles up to the ceiling.
 *
 * Why not double from the start: under heavy loss most tries fail for no other reason than
 * the loss itself (at 30 % loss each way a request and its answer both arrive half the time),
 * and doubling from the first failure turns a few unlucky drops into seconds of silence —
 * with many members, some pair is that unlucky on every run. A handful of quick tries costs a
 * few datagrams to a peer that is really gone, then the backoff takes over.
 */
export const FAST_TRIES = 4

/** The wait before retry number `attempt` (0 = the first retry). */
export function retryDelay(attempt: number, baseMs: number, maxMs: number): number {
  if (attempt < FAST_TRIES) return Math.min(baseMs, maxMs)
  return Math.min(maxMs, baseMs * 2 ** Math.min(attempt - FAST_TRIES + 1, 30))
}
