/**
 * When LMDB fails to commit (disk full, I/O error), the overlay shows batches the disk does not
 * have: the store stops (fail-stop) and every later call reports StorageError('IO'). A real
 * commit failure is hard to provoke on demand, so LMDB is replaced here by a stub whose
 * commit rejects.
 */
import type { RootDatabase } from 'lmdb'
import { describe, expect, it } from 'vitest'
import { LmdbStore } from '../src/adapters/lmdb-storage.js'
import { expectStorageError, text } from './helpers.js'

function failingLmdb() {
  let reject: (error: Error) => void = () => {}
  const commit = new Promise<boolean>((_, r) => {
    reject = r
  })
  const calls = { closed: 0 }
  const db = {
    on: () => {},
    put: () => commit,
    remove: () => commit,
    batch: (fn: () => void) => {
      fn()
      return commit
    },
    getBinaryFast: () => undefined,
    getRange: () => [],
    resetReadTxn: () => {},
    close: async () => {
      calls.closed++
    },
  }
  return {
    db: db as unknown as RootDatabase<Buffer, Buffer>,
    calls,
    fail: () => reject(new Error('MDB_MAP_FULL: Environment mapsize limit reached')),
  }
}

describe('a failed commit stops the store', () => {
  it('rejects the pending sync and makes every later call throw IO naming the cause', async () => {
    const lmdb = failingLmdb()
    let released = 0
    const store = new LmdbStore('/data/replica', lmdb.db, { release: () => released++ })
    store.put('a', text('1'))
    const synced = store.sync()
    lmdb.fail()
    const error = await expectStorageError(() => synced, 'IO', /\/data\/replica failed to commit/)
    expect(error.message).toMatch(/MDB_MAP_FULL/)
    expect(error.message).toMatch(/Close the store and open it again\./)
    await expectStorageError(() => store.get('a'), 'IO', /failed to commit/)
    await expectStorageError(() => store.put('b', text('2')), 'IO')
    await expectStorageError(() => store.scan(), 'IO')
    await expectStorageError(() => store.sync(), 'IO')
    // close() still releases LMDB and the lock, and reports the loss.
    await expectStorageError(() => store.close(), 'IO', /failed to commit/)
    expect(lmdb.calls.closed).toBe(1)
    expect(released).toBe(1)
    await expectStorageError(() => store.get('a'), 'CLOSED')
  })

  it('a failure with no sync waiting is reported by the next call', async () => {
    const lmdb = failingLmdb()
    const store = new LmdbStore('/data/replica', lmdb.db, { release: () => {} })
    store.batch([
      { type: 'put', key: 'a', value: text('1') },
      { type: 'put', key: 'b', value: text('2') },
    ])
    lmdb.fail()
    await new Promise((resolve) => setImmediate(resolve))
    await expectStorageError(
      () => store.batch([{ type: 'del', key: 'a' }]),
      'IO',
      /failed to commit/,
    )
  })
})
