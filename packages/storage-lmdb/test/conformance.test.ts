import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { storageSuite } from '@consul/testkit/storage'
import type { StableStorage } from '@consul/xkernel'
import type { LmdbStore } from '../src/adapters/lmdb-storage.js'
import { type LmdbStorage, lmdbStorage } from '../src/index.js'

const pathOf = (s: StableStorage) => (s as LmdbStorage).path

storageSuite({
  name: '@consul/storage-lmdb',
  create: () => lmdbStorage(mkdtempSync(join(tmpdir(), 'consul-lmdb-conformance-'))),
  reopen: async (s) => {
    await s.close()
    return lmdbStorage(pathOf(s))
  },
  crash: async (s) => {
    await (s as LmdbStore).simulateCrash()
    return lmdbStorage(pathOf(s))
  },
  destroy: (s) => rmSync(pathOf(s), { recursive: true, force: true }),
})
