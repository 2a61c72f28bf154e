/**
 * The checks `batch()` (and so `put` and `delete`) makes before writing anything: a bad op
 * must leave the store untouched, so every op is checked before the first is applied.
 *
 * Key checks are xkernel's `validateKey` (non-empty string, at most `MAX_KEY_BYTES` UTF-8
 * bytes, no lone surrogate — a lone surrogate has no UTF-8 form, so two such keys would
 * collide on disk).
 *
 * Known debt: `checkOps` is a copy of what `@consul/xkernel` does in `MemoryStorage.batch`
 * (the array check) and `validateOp` (packages/xkernel/src/storage.ts), same codes and
 * messages. xkernel does not export `validateOp`; once it does, `checkOps` becomes the array
 * check plus `for (const op of ops) validateOp(op)`.
 */
import { StorageError, type StorageOp, validateKey } from '@consul/xkernel'

const BAD_OP = 'a storage op must be { type: "put" | "del", key, value? }'

/** Throws `StorageError('INVALID_KEY' | 'INVALID_VALUE')` unless every op may be written. */
export function checkOps(ops: readonly StorageOp[]): void {
  if (!Array.isArray(ops)) {
    throw new StorageError('INVALID_VALUE', 'batch() takes an array of ops')
  }
  for (const op of ops as unknown[]) {
    if (op === null || typeof op !== 'object') throw new StorageError('INVALID_VALUE', BAD_OP)
    const { type, key, value } = op as { type?: unknown; key?: unknown; value?: unknown }
    if (type !== 'put' && type !== 'del') throw new StorageError('INVALID_VALUE', BAD_OP)
    validateKey(key)
    if (type === 'put' && !(value instanceof Uint8Array)) {
      throw new StorageError(
        'INVALID_VALUE',
        `value for ${JSON.stringify(key)} must be a Uint8Array, got ${typeof value}`,
      )
    }
  }
}
