/**
 * The never-skip-a-wave rule of the Order specification: `WaveSequence` tells a covered wave
 * from the expected one and from a gap; at a gap the Order stops (`stopAtWaveGap`) with an
 * error coded `WAVE_GAP` whose message is `waveGapMessage`.
 */
import type { Counters } from '../counters.js'
import type { Logger } from '../logger.js'
import type { Acknowledger } from './acknowledger.js'

/** What a wave Psync reports is, to an Order expecting `next`. */
export type WaveVerdict =
  /** Below `next`: a restored checkpoint covers it; skip it. */
  | 'covered'
  /** The wave expected; `next` moves past it. */
  | 'next'
  /** Above `next`: waves were skipped (pruned from the log above the checkpoint). */
  | 'gap'

/**
 * The never-skip-a-wave rule of the Order specification. Psync reports complete waves in
 * order, from its prune floor after a restart; an Order expects them from its restored
 * checkpoint's wave (or 0). A wave above the expected one means Psync can no longer show it
 * what lies between — its log was pruned above the checkpoint, or it restarted without one
 * after pruning — and delivering on would give a sequence that differs from every other
 * replica's. The Order must then stop (`stopAtWaveGap`, with an error coded `WAVE_GAP`).
 *
 * Invariant: `next` only grows, by one per `'next'` wave, or by `restoreTo`.
 */
export class WaveSequence {
  private expected: number

  constructor(next = 0) {
    this.expected = next
  }

  /** The first wave not yet passed. */
  get next(): number {
    return this.expected
  }

  /** A restored checkpoint covers every wave below `wave`. */
  restoreTo(wave: number): void {
    if (wave > this.expected) this.expected = wave
  }

  /** Judges `wave` (and moves past it when it is the next one). */
  see(wave: number): WaveVerdict {
    if (wave < this.expected) return 'covered'
    if (wave > this.expected) return 'gap'
    this.expected++
    return 'next'
  }

  /** The message of the error an Order stops with at a gap before `wave`. */
  gapMessage(group: string, wave: number): string {
    return waveGapMessage(group, this.expected, wave)
  }
}

/**
 * Stops an Order at a gap in the wave sequence, the same way in every Order: counts
 * `waveGaps`, logs an error with the expected and the reported wave, rejects every pending and
 * later submit with `error` (the Order's own, coded `WAVE_GAP`, message from
 * `waveGapMessage`) and silences its acknowledgements. The Order itself stops delivering.
 */
export function stopAtWaveGap(
  ctx: { readonly counters: Counters; readonly log: Logger },
  parts: { readonly batcher: { fail(error: Error): void }; readonly acks: Acknowledger },
  error: Error,
  gap: { readonly expected: number; readonly reported: number },
): void {
  ctx.counters.inc('waveGaps')
  ctx.log.error('order stopped: a gap in the wave sequence', {
    expected: gap.expected,
    reported: gap.reported,
  })
  parts.batcher.fail(error)
  parts.acks.close()
}

/** What the error of an Order that stopped at a gap says (for Orders that track waves themselves). */
export function waveGapMessage(group: string, expected: number, reported: number): string {
  return `group ${group}: Psync reported wave ${reported} but this Order expects wave ${expected} — waves ${expected}..${reported - 1} are gone from the log (pruned above the restored checkpoint, or a restart without one after pruning). The Order has stopped rather than deliver a different order; restore this replica from a checkpoint at or above wave ${reported} (state transfer) and open the group again`
}
