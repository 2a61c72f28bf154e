/** Errors `@consul/psync` throws at its API edge; network input is counted, never thrown. */
export type PsyncErrorCode =
  | 'INVALID_ARGUMENT'
  | 'NOT_A_MEMBER'
  | 'WRONG_DELIVERY_MODE'
  | 'CLOSED'
  | 'PAYLOAD_TOO_LARGE'
  /** A restarted member's own history has a hole it is still fetching back (see `send`). */
  | 'NOT_READY'
  /** The log on disk cannot be read back consistently; the member must recover by state transfer. */
  | 'LOG_CORRUPTED'
  /** An exclusion cut contradicts what this member already delivered in a complete wave. */
  | 'CUT_CONFLICT'

export class PsyncError extends Error {
  override readonly name = 'PsyncError'
  constructor(
    readonly code: PsyncErrorCode,
    message: string,
  ) {
    super(message)
  }
}
