import type { CommandFailure } from '@consul/xkernel'

export type DispatchErrorCode =
  /** The handler threw (or returned a promise): `failure` is what every replica got. */
  | 'HANDLER_FAILED'
  /** The tag is not a command of this machine (at submit, or a delivered command's tag). */
  | 'UNKNOWN_COMMAND'
  /** Arguments msgpack cannot encode, an option of the wrong shape, a bad snapshot. */
  | 'INVALID_ARGUMENT'
  /** The dispatcher's group closed before the command was applied here. */
  | 'CLOSED'
  /**
   * This replica is recovering (`@consul/recovery` replays its log after a restart and waits
   * for the view to acknowledge it): no new commands until it is active. Retry later.
   */
  | 'RECOVERING'

/** The one error class `@consul/dispatcher` throws or rejects with (`code` is stable). */
export class DispatchError extends Error {
  override readonly name = 'DispatchError'
  /**
   * `true`: the command was never sent (refused at `submit`: `RECOVERING`, `UNKNOWN_COMMAND`,
   * `INVALID_ARGUMENT`, `CLOSED` on a closed group), so no replica applies it — submitting it
   * again cannot apply it twice. `false`: its outcome is unknown here (`CLOSED` while it was
   * pending), or it was applied (`HANDLER_FAILED`: every replica recorded the failure).
   * An Order's refusal passes through as the Order's error, with its own `notApplied`;
   * `notApplied(error)` from `@consul/xkernel` reads either.
   */
  readonly notApplied: boolean
  constructor(
    readonly code: DispatchErrorCode,
    message: string,
    /** For `HANDLER_FAILED`: the failure as every replica recorded it. */
    readonly failure?: CommandFailure,
    options?: { readonly notApplied?: boolean },
  ) {
    super(message)
    this.notApplied = options?.notApplied === true
  }

  /** True for a `DispatchError` from any copy of this package. */
  static isInstance(value: unknown): value is DispatchError {
    return (
      value instanceof Error &&
      value.name === 'DispatchError' &&
      typeof (value as { code?: unknown }).code === 'string'
    )
  }
}
