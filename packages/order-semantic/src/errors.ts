/** Errors `@consul/order-semantic` throws at its API edge. */
export type OrderErrorCode =
  | 'INVALID_ARGUMENT'
  | 'BAD_CLASS'
  | 'CLOSED'
  | 'NOT_AT_WAVE_BOUNDARY'
  | 'BAD_CHECKPOINT'
  /** Psync reported a wave above the expected one: the Order stopped (see the spec). */
  | 'WAVE_GAP'

export class OrderError extends Error {
  override readonly name = 'OrderError'
  constructor(
    readonly code: OrderErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options)
  }
}
