/**
 * The one error this package throws, always at its API edge (options, `send` arguments,
 * binding). Network input never throws: a bad datagram is counted and dropped. Each error
 * carries a stable `code` to branch on, and a message that says what to do about it.
 */
export type UdpTransportErrorCode =
  /** An option is missing, of the wrong type or out of range (the message names it). */
  | 'INVALID_OPTIONS'
  /** `key` is not a `Uint8Array` of at least 16 bytes. */
  | 'INVALID_KEY'
  /** Two member ids hash to the same 32-bit sender id; rename one of them. */
  | 'ID_COLLISION'
  /** The local address and port are taken by another socket. */
  | 'ADDRESS_IN_USE'
  /** Binding failed for another reason (address not available, permission …). */
  | 'BIND_FAILED'
  /** A message is larger than this transport can fragment or reassemble. */
  | 'MESSAGE_TOO_LARGE'
  /** `epochFile` cannot be read, holds something other than an epoch, or cannot be written. */
  | 'EPOCH_FILE'

export class UdpTransportError extends Error {
  override readonly name = 'UdpTransportError'
  constructor(
    readonly code: UdpTransportErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options)
  }
}
