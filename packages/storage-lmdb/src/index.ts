/**
 * @packageDocumentation
 * `@consul/storage-lmdb` — durable stable storage for Consul on LMDB (the `lmdb` package). It
 * implements `StableStorage` from `@consul/xkernel`: atomic multi-key batches (one LMDB
 * transaction each, many batches of one event-loop turn committed together), ordered range
 * scans in Unicode code point order, read-your-writes before the commit lands, an explicit
 * `sync()` that resolves once the data is on disk, and a CRC32C on every record so damaged
 * data raises `StorageCorruptedError` instead of coming back wrong.
 *
 * @example
 * ```ts
 * import { lmdbStorage } from '@consul/storage-lmdb'
 *
 * const storage = await lmdbStorage('./data/replica-a') // created if missing (parent must exist)
 * storage.batch([
 *   { type: 'put', key: 'log/00000001', value: new TextEncoder().encode('set x 1') },
 *   { type: 'put', key: 'log/head', value: Uint8Array.of(1) },
 * ])
 * storage.get('log/head') // Uint8Array [1], before any commit (read-your-writes)
 * await storage.sync() // both records are on disk now
 * for (const { key } of storage.scan({ prefix: 'log/', reverse: true, limit: 10 })) console.log(key)
 * await storage.close()
 * ```
 */

export { DATA_FILE } from './adapters/data-file.js'
export {
  type LmdbStorage,
  type LmdbStorageStats,
  lmdbStorage,
} from './adapters/lmdb-storage.js'
export { LOCK_FILE } from './adapters/lock-file.js'
export type { LmdbStorageOptions } from './open-options.js'
