/**
 * The checks `batch()` (and so `put` and `delete`) makes before writing anything: a bad op
 * must leave the store untouched, so every op is checked before the first is applied. They
 * are `@consul/xkernel`'s (`validateOps`: an array of `{ type: 'put' | 'del', key, value? }`,
 * keys by `validateKey` — non-empty, at most `MAX_KEY_BYTES` UTF-8 bytes, no lone surrogate,
 * which has no UTF-8 form, so two such keys would collide on disk), so every store answers a
 * bad op with the same code and message.
 */
import { type StorageOp, validateOps } from '@consul/xkernel'

/** Throws `StorageError('INVALID_KEY' | 'INVALID_VALUE')` unless every op may be written. */
export function checkOps(ops: readonly StorageOp[]): void {
  validateOps(ops)
}
