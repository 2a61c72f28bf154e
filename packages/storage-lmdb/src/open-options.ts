/**
 * The arguments of `lmdbStorage(dir, options)`: checked and given their defaults before
 * anything touches the disk, so a bad call leaves no directory or lock file behind.
 *
 * Invariant: `resolveOpenOptions` either throws `StorageError('INVALID_VALUE')` or returns
 * options LMDB accepts as they are (`commitDelayMs` finite and ≥ 0, `mapSizeBytes` a positive
 * safe integer or absent).
 */
import { StorageError } from '@consul/xkernel'

export interface LmdbStorageOptions {
  /**
   * Create the directory when it does not exist (only the last path component: its parent
   * must exist). Default `true`.
   */
  readonly create?: boolean
  /**
   * How long LMDB waits to gather more writes into one transaction, in milliseconds. `0`
   * (default) commits what one event-loop turn wrote at the next turn; a few milliseconds
   * trades latency for fewer, larger commits.
   */
  readonly commitDelayMs?: number
  /**
   * Initial size of LMDB's memory map in bytes. LMDB grows it as the data grows, so this is
   * only a hint. Default: LMDB's.
   */
  readonly mapSizeBytes?: number
}

/** `LmdbStorageOptions` checked, with the defaults filled in. */
export interface ResolvedOpenOptions {
  readonly create: boolean
  readonly commitDelayMs: number
  /** `undefined`: leave LMDB's default. */
  readonly mapSizeBytes: number | undefined
}

/** Throws unless `dir` is a non-empty string (resolving it is the adapter's job). */
export function checkDirArgument(dir: unknown): asserts dir is string {
  if (typeof dir !== 'string' || dir === '') {
    throw new StorageError('INVALID_VALUE', 'lmdbStorage(dir) takes the path of a directory')
  }
}

/** Checks `options` and fills in the defaults. */
export function resolveOpenOptions(options: LmdbStorageOptions): ResolvedOpenOptions {
  if (options === null || typeof options !== 'object') {
    throw new StorageError('INVALID_VALUE', 'lmdbStorage options must be an object')
  }
  const { commitDelayMs, mapSizeBytes, create } = options
  if (create !== undefined && typeof create !== 'boolean') {
    throw new StorageError('INVALID_VALUE', 'lmdbStorage option create must be a boolean')
  }
  if (commitDelayMs !== undefined && !(Number.isFinite(commitDelayMs) && commitDelayMs >= 0)) {
    throw new StorageError(
      'INVALID_VALUE',
      `lmdbStorage option commitDelayMs must be a number ≥ 0, got ${String(commitDelayMs)}`,
    )
  }
  if (mapSizeBytes !== undefined && !(Number.isSafeInteger(mapSizeBytes) && mapSizeBytes > 0)) {
    throw new StorageError(
      'INVALID_VALUE',
      `lmdbStorage option mapSizeBytes must be a positive integer, got ${String(mapSizeBytes)}`,
    )
  }
  return { create: create ?? true, commitDelayMs: commitDelayMs ?? 0, mapSizeBytes }
}
