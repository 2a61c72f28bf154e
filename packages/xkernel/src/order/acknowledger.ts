/**
 * The acknowledgement rule: a member that received a command and has sent nothing since
 * sends an empty acknowledgement `ackDelayMs` later, so the command's wave (or clock) can
 * advance. Acknowledgements are never acknowledged, so an idle group falls silent.
 */
import type { Clock, Timer } from '../clock.js'
import type { Counters } from '../counters.js'

export interface AcknowledgerContext {
  /** The session clock (the acknowledgement timer runs on it). */
  readonly clock: Clock
  /** Counts `acks` (empty acknowledgements sent). */
  readonly counters: Counters
}

export interface AcknowledgerOptions {
  readonly ackDelayMs: number
  /**
   * Sends one empty acknowledgement, in the Order's framing (an empty payload, or e.g. a
   * stamp and no commands). Like every send of the Order, it must call `sent()`.
   */
  readonly sendAck: () => void
  /**
   * Sends the queued commands instead, if there are any, and says whether there were:
   * usually `() => batcher.flush()`.
   */
  readonly flush?: () => boolean
  /** Another reason an acknowledgement is owed besides `owe()` (checked when it matters). */
  readonly owes?: () => boolean
}

/**
 * The acknowledgement rule. Every member must pass each wave (or each command's timestamp)
 * before anyone delivers it, so a member that received a command from another member and has
 * sent nothing since sends an empty acknowledgement `ackDelayMs` later. Any send clears the
 * need; acknowledgements are never acknowledged, so an idle group falls silent.
 *
 * The Order calls `received()` after a command-bearing message from another member (never
 * for an acknowledgement), and `sent()` after each of its own sends, batches and
 * acknowledgements alike. When the timer fires and an acknowledgement is still owed, queued
 * commands go instead (`flush`), otherwise `sendAck()` runs and `acks` is counted. A send
 * that throws (Psync refuses to send for a moment, e.g. `NOT_READY` right after a restart) is
 * counted (`ackFailures`) and tried again later: it runs from a timer, where a throw would
 * end the process.
 */
export class Acknowledger {
  private needed = false
  private timer: Timer | undefined
  private closed = false

  constructor(
    private readonly ctx: AcknowledgerContext,
    private readonly options: AcknowledgerOptions,
  ) {}

  /** Whether an acknowledgement is owed now. */
  get owed(): boolean {
    return this.needed || this.options.owes?.() === true
  }

  /** A command from another member arrived: acknowledge it unless something goes out first. */
  received(): void {
    this.owe()
    this.schedule()
  }

  /** Marks an acknowledgement as owed without arming the timer (`schedule()` arms it). */
  owe(): void {
    this.needed = true
  }

  /** Arms the timer if an acknowledgement is owed and it is not already armed. */
  schedule(): void {
    if (this.timer !== undefined || this.closed || !this.owed) return
    this.timer = this.ctx.clock.setTimer(this.retryMs ?? this.options.ackDelayMs, () => {
      this.timer = undefined
      if (this.closed || !this.owed) return
      try {
        if (this.options.flush?.() === true) {
          this.retryMs = undefined
          return
        }
        this.options.sendAck()
      } catch {
        this.ctx.counters.inc('ackFailures')
        this.retryMs = Math.min(1_000, Math.max(1, (this.retryMs ?? this.options.ackDelayMs) * 2))
        this.schedule()
        return
      }
      this.retryMs = undefined
      this.ctx.counters.inc('acks')
    })
  }

  /** Set while sends fail: the next try waits this long (doubling up to a second). */
  private retryMs: number | undefined

  /** The Order sent something: that acknowledges everything received so far. */
  sent(): void {
    this.needed = false
  }

  /** Cancels the timer; nothing is sent afterwards. Idempotent. */
  close(): void {
    this.closed = true
    this.timer?.cancel()
    this.timer = undefined
  }
}
