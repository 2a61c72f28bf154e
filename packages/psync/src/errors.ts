/** Errors `@consul/psync` throws at its API edge; network input is counted, never thrown. */
export type PsyncErrorCode =
  | 'INVALID_ARGUMENT'
  | 'NOT_A_MEMBER'
  | 'WRONG_DELIVERY_MODE'
  | 'CLOSED'
  | 'PAYLOAD_TOO_LARGE'

export class PsyncError extends Error {
  override readonly name = 'PsyncError'
  constructor(
    readonly code: PsyncErrorCode,
    message: string,
  ) {
    super(message)
  }
}
