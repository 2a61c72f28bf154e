/**
 * The one error class of the Orders: `@consul/order-total`, `@consul/order-semantic` and the
 * Lamport example throw `OrderError` at their API edge (each re-exports it), so an
 * application tells an Order's refusal from anything else the same way whichever Order it
 * runs. Like the framework's other errors it carries a `Symbol.for` marker and a static
 * `isInstance()`, which works where `instanceof` does not: two copies of `@consul/xkernel` in
 * one install.
 */
import { isMarked, mark } from '../errors.js'

/** The codes an Order rejects or throws with; each Order documents the ones it uses. */
export type OrderErrorCode =
  /** A bad option, command, checkpoint argument or handler. */
  | 'INVALID_ARGUMENT'
  /** The group closed before the command was delivered, or `submit` after close. */
  | 'CLOSED'
  /** `checkpoint()` while a wave is half delivered. */
  | 'NOT_AT_WAVE_BOUNDARY'
  /** `restore()` of bytes that are not this Order's checkpoint. */
  | 'BAD_CHECKPOINT'
  /** `restore()` after the first delivery (the Lamport example). */
  | 'RESTORE_TOO_LATE'
  /** `classOf` threw or returned something that is not a class rank (order-semantic). */
  | 'BAD_CLASS'
  /** Psync reported a wave above the expected one: the Order stopped (see the spec). */
  | 'WAVE_GAP'
  /**
   * The replica is not in the primary partition: minority (new submits are refused until it
   * reaches a majority again) or excluded (pending submits are rejected too: their outcome is
   * unknown here). Raised on `membership.primary`; see the spec.
   */
  | 'NO_PRIMARY'

/** What an Order knows of a refused command's outcome (see `OrderError.notApplied`). */
export interface OrderErrorDetails {
  /** The command was never sent: it is not applied anywhere, now or later. */
  readonly notApplied?: boolean
}

export class OrderError extends Error {
  override readonly name = 'OrderError'
  /**
   * `true`: the command was never sent, so no replica applies it, now or later — the caller
   * may submit it again without risk of doing it twice (a refused argument, a submit after
   * close, a minority or excluded replica refusing a new submit, a queued command dropped at
   * close or exclusion before it went out). `false`: its outcome is unknown here (it was sent
   * and may still be, or have been, ordered), or the error is not about one command.
   * `notApplied(error)` from `@consul/xkernel` reads it from any error.
   */
  readonly notApplied: boolean
  constructor(
    readonly code: OrderErrorCode,
    message: string,
    options?: { readonly cause?: unknown } & OrderErrorDetails,
  ) {
    super(message, options)
    this.notApplied = options?.notApplied === true
    mark(this, 'OrderError')
  }

  /** `value` is an `OrderError` from any copy of `@consul/xkernel`. */
  static isInstance(value: unknown): value is OrderError {
    return isMarked(value, 'OrderError')
  }
}

/**
 * Builds the Order's error for the codes the building blocks report (`CommandBatcher`,
 * `resolveOrderOptions`, `numberOption`): usually `(code, message, details) => new
 * OrderError(code, message, details)`; an Order with an error class of its own passes that
 * instead. `details.notApplied` says the command was never sent; `CommandBatcher` also sets
 * a `notApplied` property on an error the factory built without one, so a factory that
 * ignores `details` still gives callers the fact.
 */
export type OrderErrorFactory = (
  code: 'INVALID_ARGUMENT' | 'CLOSED' | 'NO_PRIMARY',
  message: string,
  details?: OrderErrorDetails,
) => Error
