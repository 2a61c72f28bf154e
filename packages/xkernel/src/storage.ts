/**
 * Stable storage, a first-class framework service (the paper's missing facility): named
 * keys → bytes, atomic multi-key batches, ordered range scans, and an explicit `sync()`.
 *
 * Contract every implementation keeps (and `@consul/testkit/storage` checks):
 * - `batch(ops)` is atomic: after a crash either all of its ops are there or none is.
 * - Reads see every batch already written (read-your-writes), synced or not.
 * - `sync()` resolves once every batch written before the call is durable; a crash loses
 *   only batches no resolved `sync()` covered. A `sync()` still in flight when the process
 *   crashes never settles.
 * - Keys are ordered by Unicode code point (the same as UTF-8 byte order), so zero-padded
 *   or big-endian sequence numbers in keys scan in numeric order.
 * - A record that fails its checksum is never returned: reads throw `StorageCorruptedError`.
 * - Bad arguments (empty key, key over 500 UTF-8 bytes, a value that is not a `Uint8Array`)
 *   throw `StorageError('INVALID_KEY' | 'INVALID_VALUE')` and write nothing.
 */
import { StorageError } from './errors.js'

export type StorageOp =
  | { readonly type: 'put'; readonly key: string; readonly value: Uint8Array }
  | { readonly type: 'del'; readonly key: string }

export interface ScanOptions {
  /** Only keys that start with this prefix. */
  readonly prefix?: string
  /** First key (inclusive). */
  readonly start?: string
  /** Last key (exclusive). */
  readonly end?: string
  /** Descending order. */
  readonly reverse?: boolean
  /** At most this many entries. */
  readonly limit?: number
}

export interface ScanEntry {
  readonly key: string
  readonly value: Uint8Array
}

export interface StableStorage {
  /** The value under `key` (a copy the caller owns), or `undefined`. */
  get(key: string): Uint8Array | undefined
  /** Shorthand for a one-op batch. */
  put(key: string, value: Uint8Array): void
  /** Shorthand for a one-op batch. */
  delete(key: string): void
  /** Applies all ops atomically, in order (a later op on the same key wins). */
  batch(ops: readonly StorageOp[]): void
  /** Entries in key order (or reverse), filtered by prefix and range. */
  scan(options?: ScanOptions): Iterable<ScanEntry>
  /** Resolves when every batch written before this call is durable. */
  sync(): Promise<void>
  /** Flushes and releases the store; later calls throw `StorageError('CLOSED')`. */
  close(): Promise<void>
}

export const MAX_KEY_BYTES = 500

/** Compares keys by Unicode code point, which is also UTF-8 byte order. */
export function compareKeys(a: string, b: string): number {
  if (a === b) return 0
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i)
    let y = b.charCodeAt(i)
    if (x === y) continue
    // UTF-16 puts surrogates (astral code points) below U+E000..U+FFFF; code point order
    // puts them above. Shift both ranges so unit order becomes code point order.
    if (x >= 0xd800) x = x >= 0xe000 ? x - 0x800 : x + 0x2000
    if (y >= 0xd800) y = y >= 0xe000 ? y - 0x800 : y + 0x2000
    return x - y
  }
  return a.length - b.length
}

const encoder = new TextEncoder()

export function validateKey(key: unknown): asserts key is string {
  if (typeof key !== 'string' || key.length === 0) {
    throw new StorageError(
      'INVALID_KEY',
      `storage key must be a non-empty string, got ${String(key)}`,
    )
  }
  if (!key.isWellFormed()) {
    throw new StorageError('INVALID_KEY', 'storage key has a lone surrogate: it has no UTF-8 form')
  }
  if (key.length > MAX_KEY_BYTES / 3 && encoder.encode(key).length > MAX_KEY_BYTES) {
    throw new StorageError(
      'INVALID_KEY',
      `storage key is longer than ${MAX_KEY_BYTES} UTF-8 bytes: ${JSON.stringify(key.slice(0, 40))}…`,
    )
  }
}

/**
 * Checks every op of a batch before anything is written (a bad op must leave a store
 * untouched): an array of `{ type: 'put' | 'del', key, value? }` with valid keys and
 * `Uint8Array` values. Throws `StorageError('INVALID_VALUE' | 'INVALID_KEY')`. What every
 * `StableStorage` implementation's `batch` (and so `put` / `delete`) runs first.
 */
export function validateOps(ops: readonly StorageOp[]): void {
  if (!Array.isArray(ops)) {
    throw new StorageError('INVALID_VALUE', 'batch() takes an array of ops')
  }
  for (const op of ops) validateOp(op)
}

/** Checks one op (see `validateOps`). */
export function validateOp(op: StorageOp): void {
  if (op === null || typeof op !== 'object' || (op.type !== 'put' && op.type !== 'del')) {
    throw new StorageError(
      'INVALID_VALUE',
      'a storage op must be { type: "put" | "del", key, value? }',
    )
  }
  validateKey(op.key)
  if (op.type === 'put' && !(op.value instanceof Uint8Array)) {
    throw new StorageError(
      'INVALID_VALUE',
      `value for ${JSON.stringify(op.key)} must be a Uint8Array, got ${typeof op.value}`,
    )
  }
}

/** The smallest key greater than every key with this prefix (for range ends). */
export function prefixEnd(prefix: string): string {
  return `${prefix}\u{10FFFF}`
}

export interface ScopeLiveness {
  /** False once the owner is closed or its host crashed: writes are then dropped. */
  live(): boolean
  /** Called for each write dropped because the owner is gone. */
  onDeadWrite?(): void
}

/**
 * A view of a storage under a key prefix: what one protocol session gets, so protocols
 * cannot trample each other's keys. Scans and gets are relative to the prefix. With
 * `liveness`, a session that outlived its host (a crashed host's leftover callback) cannot
 * write: its writes are dropped and its syncs never settle, as for a dead process.
 */
export function scopedStorage(
  base: StableStorage,
  prefix: string,
  liveness?: ScopeLiveness,
): StableStorage {
  const full = (key: string) => {
    validateKey(key)
    return prefix + key
  }
  const dead = () => {
    if (liveness === undefined || liveness.live()) return false
    liveness.onDeadWrite?.()
    return true
  }
  const write = (ops: readonly StorageOp[]) => {
    if (!dead()) base.batch(ops)
  }
  return {
    get: (key) => base.get(full(key)),
    put: (key, value) => write([{ type: 'put', key: full(key), value }]),
    delete: (key) => write([{ type: 'del', key: full(key) }]),
    batch: (ops) => {
      // Validate before mapping: an op of unknown type must not turn into a delete.
      validateOps(ops)
      write(
        ops.map((op) =>
          op.type === 'put'
            ? { type: 'put', key: full(op.key), value: op.value }
            : { type: 'del', key: full(op.key) },
        ),
      )
    },
    *scan(options = {}) {
      const inner: { -readonly [K in keyof ScanOptions]: ScanOptions[K] } = {
        prefix: prefix + (options.prefix ?? ''),
      }
      if (options.start !== undefined) inner.start = prefix + options.start
      if (options.end !== undefined) inner.end = prefix + options.end
      if (options.reverse !== undefined) inner.reverse = options.reverse
      if (options.limit !== undefined) inner.limit = options.limit
      for (const entry of base.scan(inner)) {
        yield { key: entry.key.slice(prefix.length), value: entry.value }
      }
    },
    sync: () =>
      liveness !== undefined && !liveness.live() ? new Promise<void>(() => {}) : base.sync(),
    // A scope does not own the store; closing it is a no-op.
    close: async () => {},
  }
}
