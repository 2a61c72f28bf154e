/** Errors `consul-order-lamport` throws at its API edge. */
export type LamportOrderErrorCode =
  | 'INVALID_ARGUMENT'
  | 'CLOSED'
  | 'BAD_CHECKPOINT'
  | 'RESTORE_TOO_LATE'

export class LamportOrderError extends Error {
  override readonly name = 'LamportOrderError'
  constructor(
    readonly code: LamportOrderErrorCode,
    message: string,
  ) {
    super(message)
  }
}
