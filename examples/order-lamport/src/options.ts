import {
  numberOption,
  OrderError,
  type ResolvedOrderOptions,
  resolveOrderOptions,
} from '@consul/xkernel/order'

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

export interface ResolvedOptions extends ResolvedOrderOptions {
  readonly membershipRecheckMs: number
}

export function resolveOptions(options: LamportOrderOptions = {}): ResolvedOptions {
  const error = (code: 'INVALID_ARGUMENT' | 'CLOSED', message: string) =>
    new OrderError(code, message)
  const label = 'lamportOrder option'
  const common = resolveOrderOptions(options, error, label)
  return {
    ackDelayMs: common.ackDelayMs,
    membershipRecheckMs: numberOption(
      options,
      'membershipRecheckMs',
      { fallback: 10, min: 1 },
      error,
      label,
    ),
    maxBatch: common.maxBatch,
    maxBatchBytes: common.maxBatchBytes,
  }
}
