import { OrderError, type ResolvedOrderOptions, resolveOrderOptions } from '@consul/xkernel/order'

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

export type ResolvedOptions = ResolvedOrderOptions

export function resolveOptions(options: TotalOrderOptions = {}): ResolvedOptions {
  return resolveOrderOptions(options, (code, message) => new OrderError(code, message))
}
