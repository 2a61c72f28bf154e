/** Errors `consul-order-lamport` throws at its API edge. */
export type LamportOrderErrorCode =
  | 'INVALID_ARGUMENT'
  | 'CLOSED'
  | 'BAD_CHECKPOINT'
  | 'RESTORE_TOO_LATE'
  /** Psync reported a wave above the expected one: the Order stopped (see the spec). */
  | 'WAVE_GAP'

export class LamportOrderError extends Error {
  override readonly name = 'LamportOrderError'
  constructor(
    readonly code: LamportOrderErrorCode,
    message: string,
  ) {
    super(message)
  }
}
