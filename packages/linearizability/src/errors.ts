export type LinearizabilityErrorCode =
  /** An operation or event of the history is malformed (the message names it and the field). */
  | 'INVALID_HISTORY'
  /** An option of the wrong shape (`timeoutMs` negative, `now` not a function, …). */
  | 'INVALID_OPTIONS'
  /** The model is incomplete for this history (no `stepUnknown` while outcomes are unknown, a
   * `partition` that returns operations not in the history, …). */
  | 'INVALID_MODEL'
  /** The model threw while stepping an operation: a bug in the model, not a verdict. */
  | 'MODEL_FAILED'

const MARKER = Symbol.for('@consul/linearizability/LinearizabilityError')

/**
 * The one error class `@consul/linearizability` throws (`code` is stable). A verdict — even
 * `illegal` — is a result, never an error: this is thrown only for input the checker cannot
 * judge, before any search starts (or when the model itself fails).
 */
export class LinearizabilityError extends Error {
  override readonly name = 'LinearizabilityError'
  constructor(
    readonly code: LinearizabilityErrorCode,
    message: string,
  ) {
    super(message)
    Object.defineProperty(this, MARKER, { value: true })
  }

  /** True for a `LinearizabilityError` from any copy of this package. */
  static isInstance(value: unknown): value is LinearizabilityError {
    return (
      typeof value === 'object' &&
      value !== null &&
      (value as Record<symbol, unknown>)[MARKER] === true
    )
  }
}
