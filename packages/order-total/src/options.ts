import { OrderError } from './errors.js'

export interface TotalOrderOptions {
  /**
   * Send an empty acknowledgement this long after receiving a command when there is nothing
   * else to send, so its wave can complete (ms). Default 1.
   */
  readonly ackDelayMs?: number
  /** Most commands per Psync message. Default 256. */
  readonly maxBatch?: number
  /** Most command bytes per Psync message. Default 64 KiB. */
  readonly maxBatchBytes?: number
}

export interface ResolvedOptions {
  readonly ackDelayMs: number
  readonly maxBatch: number
  readonly maxBatchBytes: number
}

export function resolveOptions(options: TotalOrderOptions = {}): ResolvedOptions {
  const number = (
    name: keyof TotalOrderOptions,
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
      throw new OrderError(
        'INVALID_ARGUMENT',
        `order option ${name} must be ${integer ? 'an integer' : 'a number'} >= ${min}, got ${String(value)}`,
      )
    }
    return value
  }
  return {
    ackDelayMs: number('ackDelayMs', 1, 0),
    maxBatch: number('maxBatch', 256, 1, true),
    maxBatchBytes: number('maxBatchBytes', 64 * 1024, 1, true),
  }
}
