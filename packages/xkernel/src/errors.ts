/**
 * Errors thrown at the framework's API edge. Each carries a stable `code` so callers can
 * branch without parsing messages; the message says what to do about it.
 *
 * Two copies of `@consul/xkernel` can live in one process (an application and a plugin
 * installed apart, or a scenario module loaded through tsx next to the built package), and
 * `instanceof` fails across copies. So each class carries a `Symbol.for` marker, and a static
 * `isInstance(value)` that checks the marker: use it wherever an error may come from another
 * copy — storage adapters and decoders are shared across packages.
 */

/**
 * Marks `error` as one of `kind`'s, visible to every copy of the package. (Shared with the
 * error classes of the `./order` entry; not exported from the package.)
 */
export function mark(error: Error, kind: string): void {
  Object.defineProperty(error, Symbol.for(`@consul/xkernel/${kind}`), { value: true })
}

/**
 * Whether `error` says its command was **never sent**, so that no replica applies it, now or
 * later, and submitting it again cannot apply it twice: a `notApplied: true` property, as
 * `OrderError` and `@consul/dispatcher`'s `DispatchError` carry (any error, from any copy of
 * the package). `false` for anything else: the outcome is unknown, or the command was
 * applied (a handler's failure is an outcome too). Applications map it to "nothing was done"
 * (the directory's `-CLUSTERDOWN …; not applied`) instead of "it may or may not have been".
 */
export function notApplied(error: unknown): boolean {
  return (
    typeof error === 'object' &&
    error !== null &&
    (error as { readonly notApplied?: unknown }).notApplied === true
  )
}

/** `value` carries `kind`'s marker (see `mark`). */
export function isMarked(value: unknown, kind: string): boolean {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as Record<symbol, unknown>)[Symbol.for(`@consul/xkernel/${kind}`)] === true
  )
}
export type XKernelErrorCode =
  | 'MISSING_CAPABILITY'
  | 'DUPLICATE_CAPABILITY'
  | 'INVALID_ARGUMENT'
  | 'GROUP_EXISTS'
  | 'GROUP_CLOSED'
  | 'UNKNOWN_CAPABILITY'
  | 'NETWORK_CLAIMED'
  | 'HOST_CRASHED'
  | 'HOST_STOPPED'
  | 'RECOVERY_FAILED'
  /** Two Divider channels claim the same byte or the same name (`defineChannel`). */
  | 'CHANNEL_CLASH'
  /** The primary excluded this member (`MembershipControl.up` after an exclusion). */
  | 'EXCLUDED'
  /** Recovery fetched a checkpoint from a live member: the group must restart from it. */
  | 'RESTART_REQUIRED'

export class XKernelError extends Error {
  override readonly name = 'XKernelError'
  constructor(
    readonly code: XKernelErrorCode,
    message: string,
    options?: { readonly cause?: unknown },
  ) {
    super(message, options)
    mark(this, 'XKernelError')
  }

  /** `value` is an `XKernelError` from any copy of `@consul/xkernel`. */
  static isInstance(value: unknown): value is XKernelError {
    return isMarked(value, 'XKernelError')
  }
}

export type DecodeErrorCode = 'TRUNCATED' | 'VARINT_OVERFLOW' | 'INVALID'

/**
 * Malformed bytes. Decoders throw it; the code that reads from the network catches it,
 * counts the drop and never lets it reach protocol logic.
 */
export class DecodeError extends Error {
  override readonly name = 'DecodeError'
  constructor(
    readonly code: DecodeErrorCode,
    message: string,
  ) {
    super(message)
    mark(this, 'DecodeError')
  }

  /** `value` is a `DecodeError` from any copy of `@consul/xkernel`. */
  static isInstance(value: unknown): value is DecodeError {
    return isMarked(value, 'DecodeError')
  }
}

export type StorageErrorCode = 'CLOSED' | 'INVALID_KEY' | 'INVALID_VALUE' | 'IO'

/** A stable-storage operation that cannot be carried out. */
export class StorageError extends Error {
  override readonly name: string = 'StorageError'
  constructor(
    readonly code: StorageErrorCode | 'CORRUPTED',
    message: string,
  ) {
    super(message)
    mark(this, 'StorageError')
  }

  /** `value` is a `StorageError` (or `StorageCorruptedError`) from any copy of `@consul/xkernel`. */
  static isInstance(value: unknown): value is StorageError {
    return isMarked(value, 'StorageError')
  }
}

/**
 * A record whose checksum does not match what was written. Storage never returns bad bytes
 * silently: it throws this, naming the key and where the record lives.
 */
export class StorageCorruptedError extends StorageError {
  override readonly name = 'StorageCorruptedError'
  constructor(
    readonly key: string,
    readonly location: string,
    detail: string,
  ) {
    super(
      'CORRUPTED',
      `stored record ${JSON.stringify(key)} in ${location} is corrupted: ${detail}`,
    )
    mark(this, 'StorageCorruptedError')
  }

  /** `value` is a `StorageCorruptedError` from any copy of `@consul/xkernel`. */
  static override isInstance(value: unknown): value is StorageCorruptedError {
    return isMarked(value, 'StorageCorruptedError')
  }
}
