/**
 * The one error class of the tuple space: thrown by the validators, rejected by the replica's
 * operations and by the client, and sent on the wire as `{ code, message }`.
 */

export type TupleSpaceErrorCode =
  /** A frame that is not one JSON object on one line. The connection stays open. */
  | 'BAD_FRAME'
  /** A line longer than the server's `maxFrameBytes`: skipped up to its end. */
  | 'FRAME_TOO_LONG'
  /** A JSON object without a usable `id`, or an operation's field missing or of a wrong type. */
  | 'BAD_REQUEST'
  /** An `op` the server does not know. */
  | 'UNKNOWN_OP'
  /** A tuple that is not an array of 1–64 strings, finite numbers, booleans, nulls or bytes. */
  | 'BAD_TUPLE'
  /** A template that is not an array of 1–64 values and formals (`{ formal: type }`). */
  | 'BAD_TEMPLATE'
  /** A tuple or template larger than the limit (32 KiB of values). */
  | 'TOO_LARGE'
  /** A request id still pending on this connection. */
  | 'DUPLICATE_ID'
  /** More requests pending on this connection than the server allows. */
  | 'TOO_MANY_PENDING'
  /** The server has `maxConnections` open already: this one is answered so and closed. */
  | 'TOO_MANY_CONNECTIONS'
  /** The request was cancelled (`cancel`, an aborted signal): it took nothing. */
  | 'CANCELLED'
  /** This replica is restarting or recovering: nothing was done; retry (here or elsewhere). */
  | 'RECOVERING'
  /**
   * The group refused the request before it was sent (this replica is in a minority
   * partition, leaving, or its group closed or moved into a new configuration first):
   * nothing was done — retry, here later or at another replica.
   */
  | 'REFUSED'
  /**
   * The group could not finish the request here after it was sent (this replica was excluded,
   * the group moved into a new configuration or closed while it was in flight): the outcome
   * is unknown — an `out` may have happened, an `in` may have taken a tuple.
   */
  | 'UNAVAILABLE'
  /** The client's connection closed before the reply came. */
  | 'CONNECTION_CLOSED'
  /** A bug: the message says what. */
  | 'INTERNAL'

const MARKER = Symbol.for('@consul/tuple-space/error')

export class TupleSpaceError extends Error {
  override readonly name = 'TupleSpaceError'
  readonly [MARKER] = true

  constructor(
    readonly code: TupleSpaceErrorCode,
    message: string,
  ) {
    super(message)
  }

  /** True for a `TupleSpaceError` from any copy of this package. */
  static isInstance(value: unknown): value is TupleSpaceError {
    return (
      typeof value === 'object' &&
      value !== null &&
      (value as Record<symbol, unknown>)[MARKER] === true &&
      typeof (value as { code?: unknown }).code === 'string'
    )
  }
}

export const ERROR_CODES: readonly TupleSpaceErrorCode[] = [
  'BAD_FRAME',
  'FRAME_TOO_LONG',
  'BAD_REQUEST',
  'UNKNOWN_OP',
  'BAD_TUPLE',
  'BAD_TEMPLATE',
  'TOO_LARGE',
  'DUPLICATE_ID',
  'TOO_MANY_PENDING',
  'TOO_MANY_CONNECTIONS',
  'CANCELLED',
  'RECOVERING',
  'REFUSED',
  'UNAVAILABLE',
  'CONNECTION_CLOSED',
  'INTERNAL',
]
