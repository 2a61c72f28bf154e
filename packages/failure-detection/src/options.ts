/** Failure Detection's options, checked once at `failureDetection(options)`. */
import { XKernelError } from '@consul/xkernel'

export interface FailureDetectionOptions {
  /**
   * Suspect a member after this long without hearing anything from it (ms, before the
   * adaptations below). Default 150: with alive messages every 40 ms a crashed member is
   * suspected within ≈ 150–180 ms.
   */
  readonly suspectAfterMs?: number
  /** Send an alive message after this long without sending anything (ms). Default 40. */
  readonly aliveEveryMs?: number
  /**
   * Timeouts for a member Psync is retransmitting to or from — and that was heard from after
   * the latest retransmission: a lossy link, not a dead member — are multiplied by this while
   * the retransmission is recent (within 4 × `suspectAfterMs`). Default 2.
   */
  readonly retransmitFactor?: number
  /** Multiplier while Recovery brings the member back. Default 4. */
  readonly recoveryFactor?: number
  /** Multiplier while Membership decides about the member. Default 2. */
  readonly decidingFactor?: number
  /**
   * Local health: this replica's own recent timer lateness (the worst over `healthWindowMs`)
   * is added to every timeout this many times. Default 2.
   */
  readonly localLagFactor?: number
  /** How long a stall of this replica's own timers counts against accusing others (ms). Default 2,000. */
  readonly healthWindowMs?: number
  /**
   * A member not heard from at all since the group opened here gets at least this long (ms):
   * replicas start at different times, and a peer still starting is not a failed one.
   * Default 2,000 (or `suspectAfterMs`, if larger).
   */
  readonly startupGraceMs?: number
}

export interface ResolvedOptions {
  readonly suspectAfterMs: number
  readonly aliveEveryMs: number
  readonly tickMs: number
  readonly retransmitFactor: number
  readonly recoveryFactor: number
  readonly decidingFactor: number
  readonly localLagFactor: number
  readonly healthWindowMs: number
  readonly startupGraceMs: number
}

function positive(
  options: Record<string, unknown>,
  name: keyof FailureDetectionOptions,
  fallback: number,
  min: number,
): number {
  const v = options[name]
  if (v === undefined) return fallback
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min)
    throw new XKernelError(
      'INVALID_ARGUMENT',
      `failureDetection: ${name} must be a finite number >= ${min}, got ${String(v)}`,
    )
  return v
}

export function resolveOptions(options: FailureDetectionOptions = {}): ResolvedOptions {
  if (typeof options !== 'object' || options === null)
    throw new XKernelError('INVALID_ARGUMENT', 'failureDetection() takes an options object')
  const o = options as Record<string, unknown>
  const suspectAfterMs = positive(o, 'suspectAfterMs', 150, 1)
  const aliveEveryMs = positive(o, 'aliveEveryMs', Math.min(40, suspectAfterMs / 3), 1)
  if (aliveEveryMs >= suspectAfterMs)
    throw new XKernelError(
      'INVALID_ARGUMENT',
      `failureDetection: aliveEveryMs (${aliveEveryMs}) must be below suspectAfterMs (${suspectAfterMs}), or a quiet member is suspected between two alive messages`,
    )
  return {
    suspectAfterMs,
    aliveEveryMs,
    // Checked often enough that a suspicion comes at most a fifth of the timeout late.
    tickMs: Math.min(aliveEveryMs, suspectAfterMs / 5),
    retransmitFactor: positive(o, 'retransmitFactor', 2, 1),
    recoveryFactor: positive(o, 'recoveryFactor', 4, 1),
    decidingFactor: positive(o, 'decidingFactor', 2, 1),
    localLagFactor: positive(o, 'localLagFactor', 2, 0),
    healthWindowMs: positive(o, 'healthWindowMs', 2_000, 1),
    startupGraceMs: Math.max(suspectAfterMs, positive(o, 'startupGraceMs', 2_000, 0)),
  }
}
