/**
 * Errors thrown at the framework's API edge. Each carries a stable `code` so callers can
 * branch without parsing messages; the message says what to do about it.
 */
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

export class XKernelError extends Error {
  override readonly name = 'XKernelError'
  constructor(
    readonly code: XKernelErrorCode,
    message: string,
    options?: { readonly cause?: unknown },
  ) {
    super(message, options)
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
  }
}
