import { LamportOrderError } from './errors.js'

export interface LamportOrderOptions {
  /**
   * After receiving a command, send an acknowledgement (a message carrying this member's
   * timestamp and no commands) this long later if nothing else went out meanwhile (ms).
   * Every member's clock must pass a command's timestamp before anyone may deliver it, so
   * this is most of the latency added by an idle member. Default 1.
   */
  readonly ackDelayMs?: number
  /**
   * While commands wait for stability, look at the agreed membership list again this often
   * (ms). Messages and completed waves already prompt a look; this catches an exclusion
   * that neither follows. Default 10.
   */
  readonly membershipRecheckMs?: number
  /** Most commands per Psync message. Default 256. */
  readonly maxBatch?: number
  /** Most command bytes per Psync message. Default 64 KiB. */
  readonly maxBatchBytes?: number
}

export interface ResolvedOptions {
  readonly ackDelayMs: number
  readonly membershipRecheckMs: number
  readonly maxBatch: number
  readonly maxBatchBytes: number
}

export function resolveOptions(options: LamportOrderOptions = {}): ResolvedOptions {
  const number = (
    name: keyof LamportOrderOptions,
    fallback: number,
    min: number,
    integer = false,
  ) => {
    const value = options[name] ?? fallback
    if (
      typeof value !== 'number' ||
      !Number.isFinite(value) ||
      value < min ||
      (integer && !Number.isInteger(value))
    ) {
      throw new LamportOrderError(
        'INVALID_ARGUMENT',
        `lamportOrder option ${name} must be ${integer ? 'an integer' : 'a number'} >= ${min}, got ${String(value)}`,
      )
    }
    return value
  }
  return {
    ackDelayMs: number('ackDelayMs', 1, 0),
    membershipRecheckMs: number('membershipRecheckMs', 10, 1),
    maxBatch: number('maxBatch', 256, 1, true),
    maxBatchBytes: number('maxBatchBytes', 64 * 1024, 1, true),
  }
}
