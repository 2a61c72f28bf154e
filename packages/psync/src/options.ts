/** Psync's options, their defaults and their validation. */
import { PsyncError } from './errors.js'

export interface PsyncOptions {
  /** Group commit period of the message log (ms). Default 5. */
  readonly logEveryMs?: number
  /** Wait before asking for a missing predecessor, so reordering can resolve itself (ms). Default 2. */
  readonly nackDelayMs?: number
  /** Then ask someone else after this, doubling each time (ms). Default 40. */
  readonly retransmitTimeoutMs?: number
  /** Ceiling of every backoff (ms). Default 2000. */
  readonly maxBackoffMs?: number
  /** Re-send the latest own message to a peer that has not acknowledged it after (ms). Default 50. */
  readonly resendAfterMs?: number
  /** Repeat the restart request this often until a peer answers (ms). Default 100. */
  readonly restartRetryMs?: number
  /** Most messages held for missing predecessors. Default 10,000. */
  readonly maxHeld?: number
  /** Most payload bytes held. Default 64 MiB. */
  readonly maxHeldBytes?: number
  /** A held message whose predecessors never come is dropped after (ms). Default 60,000. */
  readonly heldExpiryMs?: number
  /** Most messages sent in answer to one request (the requester asks again for more). Default 256. */
  readonly maxRetransmitBatch?: number
  /** Largest payload `send` accepts. Default 1 MiB. */
  readonly maxPayloadBytes?: number
  /**
   * What retransmission answers and re-sends to one peer may cost, in bytes per second (each
   * message: its frame plus 64 bytes of datagram overhead). Over budget, an answer is deferred
   * and sent as the budget refills. `Infinity` turns the budget off. Default 1 MiB.
   */
  readonly repairBytesPerSecondPerPeer?: number
  /**
   * The most one peer may make us send at once (the bucket's size), and the most one request
   * is answered with (at least one message; the requester asks again for the rest).
   * `Infinity` turns the budget off. Default 256 KiB.
   */
  readonly repairBurstBytes?: number
  /**
   * A peer's restart is answered (LEAVES) at most once per this interval; repeats within it are
   * coalesced into one answer at its end. 0: every RESTART is answered at once. Default 100.
   */
  readonly restartAnswerIntervalMs?: number
  /**
   * Keep this many complete waves and prune stable messages below them — but never above the
   * floor checkpointing declared with `setPruneFloor`, once it has. Without checkpointing it
   * bounds the log, and a member restarted after pruning cannot replay the pruned waves: its
   * Order stops with `WAVE_GAP` (the price of a bounded log without checkpoints). Default: no
   * automatic pruning (`setPruneFloor` only).
   */
  readonly retainWaves?: number
  /** How often pruning runs while the prune floor moves (ms). Default 100. */
  readonly pruneEveryMs?: number
  /** `'callback'` (default) or `'iterator'`; a group can override it with `options.psync.delivery`. */
  readonly delivery?: 'callback' | 'iterator'
}

export interface ResolvedOptions {
  readonly logEveryMs: number
  readonly nackDelayMs: number
  readonly retransmitTimeoutMs: number
  readonly maxBackoffMs: number
  readonly resendAfterMs: number
  readonly restartRetryMs: number
  readonly maxHeld: number
  readonly maxHeldBytes: number
  readonly heldExpiryMs: number
  readonly maxPayloadBytes: number
  readonly maxRetransmitBatch: number
  readonly repairBytesPerSecondPerPeer: number
  readonly repairBurstBytes: number
  readonly restartAnswerIntervalMs: number
  readonly retainWaves: number | undefined
  readonly pruneEveryMs: number
  readonly delivery: 'callback' | 'iterator'
}

export function resolveOptions(options: PsyncOptions = {}): ResolvedOptions {
  if (options === null || typeof options !== 'object') {
    throw new PsyncError('INVALID_ARGUMENT', 'psync(options) takes an object')
  }
  const positive = (name: keyof PsyncOptions, fallback: number, min = 0): number => {
    const value = options[name] ?? fallback
    if (typeof value !== 'number' || !Number.isFinite(value) || value < min) {
      throw new PsyncError(
        'INVALID_ARGUMENT',
        `psync option ${name} must be a finite number >= ${min}, got ${String(value)}`,
      )
    }
    return value
  }
  // A budget: a positive number of bytes, or Infinity (off). 0 would stop answering for good.
  const budget = (name: keyof PsyncOptions, fallback: number): number => {
    const value = options[name] ?? fallback
    if (typeof value !== 'number' || Number.isNaN(value) || value < 1) {
      throw new PsyncError(
        'INVALID_ARGUMENT',
        `psync option ${name} must be a number >= 1 (bytes), or Infinity to turn the repair budget off, got ${String(value)}`,
      )
    }
    return value
  }
  const delivery = options.delivery ?? 'callback'
  if (delivery !== 'callback' && delivery !== 'iterator') {
    throw new PsyncError(
      'INVALID_ARGUMENT',
      `psync option delivery must be 'callback' or 'iterator', got ${String(delivery)}`,
    )
  }
  const retainWaves = options.retainWaves
  if (retainWaves !== undefined && (!Number.isSafeInteger(retainWaves) || retainWaves < 1)) {
    throw new PsyncError(
      'INVALID_ARGUMENT',
      `psync option retainWaves must be an integer >= 1, got ${retainWaves}`,
    )
  }
  return {
    logEveryMs: positive('logEveryMs', 5),
    nackDelayMs: positive('nackDelayMs', 2),
    retransmitTimeoutMs: positive('retransmitTimeoutMs', 40, 1),
    maxBackoffMs: positive('maxBackoffMs', 2000, 1),
    resendAfterMs: positive('resendAfterMs', 50, 1),
    restartRetryMs: positive('restartRetryMs', 100, 1),
    maxHeld: positive('maxHeld', 10_000, 1),
    maxHeldBytes: positive('maxHeldBytes', 64 * 1024 * 1024, 1),
    heldExpiryMs: positive('heldExpiryMs', 60_000, 1),
    maxPayloadBytes: positive('maxPayloadBytes', 1024 * 1024, 0),
    maxRetransmitBatch: positive('maxRetransmitBatch', 256, 1),
    repairBytesPerSecondPerPeer: budget('repairBytesPerSecondPerPeer', 1024 * 1024),
    repairBurstBytes: budget('repairBurstBytes', 256 * 1024),
    restartAnswerIntervalMs: positive('restartAnswerIntervalMs', 100),
    retainWaves,
    pruneEveryMs: positive('pruneEveryMs', 100, 1),
    delivery,
  }
}
