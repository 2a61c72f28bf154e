import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import {
  compareKeys,
  MemoryStorage,
  type ScanOptions,
  type StableStorage,
  type StorageOp,
} from '@consul/xkernel'
import { afterEach, describe, expect, it } from 'vitest'
import { DATA_FILE, type LmdbStorage, LOCK_FILE, lmdbStorage } from '../src/index.js'
import { expectStorageError, removeTempDirs, str, tempDir, text } from './helpers.js'

const opened: LmdbStorage[] = []
async function fresh(dir = tempDir()): Promise<LmdbStorage> {
  const storage = await lmdbStorage(dir)
  opened.push(storage)
  return storage
}
afterEach(async () => {
  for (const s of opened.splice(0)) await s.close().catch(() => {})
  removeTempDirs()
})

const collect = (s: StableStorage, options?: ScanOptions) =>
  [...s.scan(options)].map((e) => [e.key, str(e.value)])

describe('lmdbStorage basics', () => {
  it('round-trips values, empty and large, and returns undefined for missing keys', async () => {
    const s = await fresh()
    expect(s.get('missing')).toBeUndefined()
    s.put('k', text('v'))
    s.put('empty', new Uint8Array(0))
    const big = Uint8Array.from({ length: 1 << 20 }, (_, i) => i % 251)
    s.put('big', big)
    for (const when of ['pending', 'committed']) {
      expect(str(s.get('k')), when).toBe('v')
      expect(s.get('empty'), when).toEqual(new Uint8Array(0))
      expect(Buffer.compare(s.get('big')!, big), when).toBe(0)
      await s.sync()
    }
  })

  it('returns plain Uint8Array copies and keeps its own copy of what was written', async () => {
    const s = await fresh()
    const input = text('abc')
    s.put('k', input)
    input[0] = 0x7a
    const pendingOut = s.get('k')!
    expect(pendingOut.constructor).toBe(Uint8Array)
    pendingOut[1] = 0x7a
    expect(str(s.get('k'))).toBe('abc')
    await s.sync()
    const committedOut = s.get('k')!
    expect(committedOut.constructor).toBe(Uint8Array)
    committedOut[1] = 0x7a
    expect(str(s.get('k'))).toBe('abc')
    const [scanned] = [...s.scan()]
    expect(scanned!.value.constructor).toBe(Uint8Array)
  })

  it('creates the directory, keeps data.mdb and its lock file in it, and releases the lock on close', async () => {
    const parent = tempDir()
    const dir = join(parent, 'replica.v1') // a dot in the name still means a directory
    const s = await lmdbStorage(dir)
    expect(s.path).toBe(dir)
    expect(readdirSync(dir).sort()).toEqual([LOCK_FILE, DATA_FILE, 'lock.mdb'].sort())
    await s.close()
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false)
    expect(existsSync(join(dir, DATA_FILE))).toBe(true)
  })

  it('reads its own writes before the commit lands, deletes included', async () => {
    const s = await fresh()
    s.batch([
      { type: 'put', key: 'log/1', value: text('a') },
      { type: 'put', key: 'log/2', value: text('b') },
    ])
    await s.sync()
    expect(s.stats().pendingBatches).toBe(0)
    s.delete('log/1')
    s.put('log/3', text('c'))
    s.put('log/2', text('B'))
    // Nothing of the last three batches is committed yet: reads come from the overlay.
    expect(s.stats().pendingBatches).toBe(3)
    expect(s.get('log/1')).toBeUndefined()
    expect(str(s.get('log/2'))).toBe('B')
    expect(collect(s, { prefix: 'log/' })).toEqual([
      ['log/2', 'B'],
      ['log/3', 'c'],
    ])
    expect(collect(s, { prefix: 'log/', reverse: true })).toEqual([
      ['log/3', 'c'],
      ['log/2', 'B'],
    ])
    await s.sync()
    expect(s.stats().pendingBatches).toBe(0)
    expect(collect(s, { prefix: 'log/' })).toEqual([
      ['log/2', 'B'],
      ['log/3', 'c'],
    ])
  })

  it('commits every batch written in one event-loop turn in one LMDB transaction', async () => {
    const s = await fresh()
    s.put('warm-up', text('x'))
    await s.sync()
    const before = s.stats()
    for (let n = 0; n < 1000; n++) {
      s.batch([
        { type: 'put', key: `n/${String(n).padStart(4, '0')}/a`, value: text(String(n)) },
        { type: 'put', key: `n/${String(n).padStart(4, '0')}/b`, value: text(String(n)) },
        { type: 'put', key: 'last', value: text(String(n)) },
      ])
    }
    await s.sync()
    const after = s.stats()
    expect(after.batches - before.batches).toBe(1000)
    expect(after.commits - before.commits).toBe(1)
    expect(str(s.get('last'))).toBe('999')
    expect([...s.scan({ prefix: 'n/' })]).toHaveLength(2000)
  })

  it('sync resolves only after the data is committed (and flushed); a sync with nothing to do resolves', async () => {
    const s = await fresh()
    await expect(s.sync()).resolves.toBeUndefined()
    for (let i = 0; i < 50; i++) s.put(`k/${i}`, text(String(i)))
    const done = s.sync()
    expect(s.stats().pendingBatches).toBe(50)
    await done
    expect(s.stats().pendingBatches).toBe(0)
    expect(s.stats().syncs).toBe(2)
  })

  it('orders keys by Unicode code point (UTF-8 bytes), astral above U+E000, committed and pending alike', async () => {
    const s = await fresh()
    const keys = [
      '\u{1F600}',
      '\uE000',
      '\uFFFD',
      'z',
      'é',
      'a',
      'a\u{10000}',
      'a\uFFFF',
      '\u{10FFFF}',
    ]
    // UTF-16 order (JavaScript's default sort) differs: that is the point of the test.
    expect([...keys].sort()).not.toEqual([...keys].sort(compareKeys))
    s.batch(keys.slice(0, 5).map((key) => ({ type: 'put', key, value: text(key) })))
    await s.sync()
    s.batch(keys.slice(5).map((key) => ({ type: 'put', key, value: text(key) })))
    const expected = [...keys].sort(compareKeys)
    expect(collect(s).map(([k]) => k)).toEqual(expected)
    expect(collect(s, { reverse: true }).map(([k]) => k)).toEqual([...expected].reverse())
    await s.sync()
    expect(collect(s).map(([k]) => k)).toEqual(expected)
    expect(collect(s, { start: '\uE000' }).map(([k]) => k)).toEqual(
      expected.filter((k) => compareKeys(k, '\uE000') >= 0),
    )
  })

  it('scans with prefix, start, end, reverse and limit like MemoryStorage, over mixed committed and pending data', async () => {
    const s = await fresh()
    const model = new MemoryStorage()
    const both = (ops: StorageOp[]) => {
      s.batch(ops)
      model.batch(ops)
    }
    const keys = [
      'a',
      'a/1',
      'a/10',
      'a/2',
      'ab',
      'b',
      'b/\u{1F600}',
      'b/\uE000',
      'é',
      '\u{1F600}',
      'z',
    ]
    both(keys.map((key) => ({ type: 'put', key, value: text(`${key}@1`) })))
    await s.sync()
    both([
      { type: 'del', key: 'a/10' },
      { type: 'put', key: 'a/3', value: text('a/3@2') },
      { type: 'put', key: 'b', value: text('b@2') },
      { type: 'del', key: 'z' },
      { type: 'put', key: 'zz', value: text('zz@2') },
    ])
    const cases: ScanOptions[] = [
      {},
      { prefix: 'a' },
      { prefix: 'a/' },
      { prefix: 'a/', reverse: true },
      { prefix: 'b/', reverse: true, limit: 1 },
      { start: 'a/2' },
      { end: 'b' },
      { start: 'a/10', end: 'b/' },
      { start: 'a/10', end: 'b/', reverse: true },
      { reverse: true, limit: 4 },
      { limit: 0 },
      { prefix: 'nothing' },
      { start: 'zzz' },
      { start: 'b', end: 'a' },
      { prefix: 'a', start: 'a/2', end: 'b' },
      { prefix: 'a', start: 'a/2', end: 'b', reverse: true, limit: 2 },
      { prefix: 'b/', start: '\uE000' },
      { start: '\uE000' },
      { end: '\u{1F600}' },
      // Bounds cut inside a surrogate pair (no UTF-8 form): compared as strings, like the model.
      { prefix: '\uD83D' },
      { prefix: 'b/\uD83D', reverse: true },
      { start: '\uD83D' },
      { end: '\uD83D\uDE01' },
      { start: 'b/\uDE00', end: '\uDBFF' },
    ]
    for (const phase of ['mixed', 'committed']) {
      for (const options of cases) {
        expect(collect(s, options), `${phase} ${JSON.stringify(options)}`).toEqual(
          collect(model, options),
        )
      }
      await s.sync()
    }
  })

  it('a scan reads a snapshot taken at its first step, even across later commits', async () => {
    const s = await fresh()
    for (let i = 0; i < 10; i++) s.put(`k/${i}`, text(`old${i}`))
    await s.sync()
    s.put('k/5', text('pending5'))
    const iterator = s.scan({ prefix: 'k/' })[Symbol.iterator]()
    const first = [iterator.next().value, iterator.next().value].map((e) => e?.key)
    expect(first).toEqual(['k/0', 'k/1'])
    s.batch([...Array(10).keys()].map((i) => ({ type: 'del', key: `k/${i}` }) as const))
    s.put('k/99', text('new'))
    await s.sync()
    const rest: [string, string | undefined][] = []
    for (let r = iterator.next(); r.done !== true; r = iterator.next()) {
      rest.push([r.value.key, str(r.value.value)])
    }
    expect(rest.map(([k]) => k)).toEqual(['k/2', 'k/3', 'k/4', 'k/5', 'k/6', 'k/7', 'k/8', 'k/9'])
    expect(rest.find(([k]) => k === 'k/5')?.[1]).toBe('pending5')
    expect(collect(s, { prefix: 'k/' })).toEqual([['k/99', 'new']])
  })

  it('keeps synced data and flushes unsynced writes on close, across reopen', async () => {
    const dir = tempDir()
    const s = await lmdbStorage(dir)
    s.batch([
      { type: 'put', key: 'a', value: text('1') },
      { type: 'put', key: 'b', value: text('2') },
    ])
    await s.sync()
    s.delete('a')
    s.put('c', text('3')) // never synced: close() must flush it
    await s.close()
    const again = await fresh(dir)
    expect(collect(again)).toEqual([
      ['b', '2'],
      ['c', '3'],
    ])
  })

  it('counts batches, records, syncs and commits', async () => {
    const s = await fresh()
    s.batch([
      { type: 'put', key: 'a', value: text('1') },
      { type: 'del', key: 'b' },
    ])
    s.put('c', text('3'))
    s.batch([])
    await s.sync()
    expect(s.stats()).toEqual({
      batches: 2,
      puts: 2,
      deletes: 1,
      commits: 1,
      syncs: 1,
      pendingBatches: 0,
      corruptedReads: 0,
    })
  })
})

describe('lmdbStorage close', () => {
  it('throws StorageError CLOSED from every later call; close itself is idempotent', async () => {
    const s = await fresh()
    s.put('k', text('v'))
    await s.close()
    await expectStorageError(() => s.get('k'), 'CLOSED', /closed/)
    await expectStorageError(() => s.put('k', text('w')), 'CLOSED')
    await expectStorageError(() => s.delete('k'), 'CLOSED')
    await expectStorageError(() => s.batch([{ type: 'del', key: 'k' }]), 'CLOSED')
    await expectStorageError(() => s.scan(), 'CLOSED')
    await expectStorageError(() => s.sync(), 'CLOSED')
    await expect(s.close()).resolves.toBeUndefined()
  })

  it('makes a scan left open across close throw CLOSED instead of touching the closed file', async () => {
    const s = await fresh()
    for (let i = 0; i < 5; i++) s.put(`k/${i}`, text(String(i)))
    await s.sync()
    const iterator = s.scan()[Symbol.iterator]()
    expect(iterator.next().value?.key).toBe('k/0')
    await s.close()
    await expectStorageError(() => iterator.next(), 'CLOSED')
  })

  it('a scan broken off early releases its cursor; the store keeps working and closes', async () => {
    const s = await fresh()
    for (let i = 0; i < 100; i++) s.put(`k/${String(i).padStart(3, '0')}`, text(String(i)))
    await s.sync()
    for (let round = 0; round < 50; round++) {
      for (const entry of s.scan({ prefix: 'k/' })) {
        expect(entry.key).toBe('k/000')
        break
      }
    }
    s.put('k/100', text('100'))
    await s.sync()
    expect([...s.scan({ prefix: 'k/', reverse: true, limit: 1 })][0]?.key).toBe('k/100')
    await expect(s.close()).resolves.toBeUndefined()
  })
})

describe('lmdbStorage bad arguments', () => {
  it('rejects bad keys with INVALID_KEY and bad values with INVALID_VALUE', async () => {
    const s = await fresh()
    await expectStorageError(() => s.put('', text('x')), 'INVALID_KEY')
    await expectStorageError(() => s.get(42 as unknown as string), 'INVALID_KEY')
    await expectStorageError(() => s.put('x'.repeat(501), text('x')), 'INVALID_KEY')
    await expectStorageError(() => s.put('é'.repeat(251), text('x')), 'INVALID_KEY')
    s.put('x'.repeat(500), text('max'))
    expect(str(s.get('x'.repeat(500)))).toBe('max')
    await expectStorageError(() => s.put('k', [1, 2] as unknown as Uint8Array), 'INVALID_VALUE')
    await expectStorageError(() => s.batch('nope' as unknown as StorageOp[]), 'INVALID_VALUE')
    await expectStorageError(
      () => s.batch([{ type: 'upsert', key: 'k' } as unknown as StorageOp]),
      'INVALID_VALUE',
    )
    await expectStorageError(() => s.batch([null as unknown as StorageOp]), 'INVALID_VALUE')
  })

  it('rejects keys with an unpaired surrogate (they have no UTF-8 form and would collide)', async () => {
    const s = await fresh()
    await expectStorageError(() => s.put('a\uD800', text('x')), 'INVALID_KEY', /surrogate/)
    await expectStorageError(() => s.get('\uDC00b'), 'INVALID_KEY', /surrogate/)
    s.put('ok\u{1F600}', text('paired surrogates are fine'))
    expect(str(s.get('ok\u{1F600}'))).toBe('paired surrogates are fine')
  })

  it('a batch with one bad op writes nothing', async () => {
    const s = await fresh()
    s.put('keep', text('x'))
    const bad = [
      { type: 'put', key: 'a', value: text('1') },
      { type: 'del', key: 'keep' },
      { type: 'put', key: 'b', value: 'not bytes' },
    ] as unknown as StorageOp[]
    await expectStorageError(() => s.batch(bad), 'INVALID_VALUE')
    await s.sync()
    expect(collect(s)).toEqual([['keep', 'x']])
    expect(s.stats().batches).toBe(1)
  })

  it('rejects malformed scan options', async () => {
    const s = await fresh()
    await expectStorageError(() => s.scan({ prefix: 1 } as unknown as ScanOptions), 'INVALID_KEY')
    await expectStorageError(() => s.scan({ end: null } as unknown as ScanOptions), 'INVALID_KEY')
    await expectStorageError(
      () => s.scan({ limit: '3' } as unknown as ScanOptions),
      'INVALID_VALUE',
    )
    await expectStorageError(() => s.scan('all' as unknown as ScanOptions), 'INVALID_VALUE')
  })

  it('rejects a missing path and bad options before touching the disk', async () => {
    await expectStorageError(() => lmdbStorage(''), 'INVALID_VALUE', /directory/)
    await expectStorageError(() => lmdbStorage(7 as unknown as string), 'INVALID_VALUE')
    const dir = join(tempDir(), 'not-created')
    await expectStorageError(() => lmdbStorage(dir, { commitDelayMs: -1 }), 'INVALID_VALUE')
    await expectStorageError(() => lmdbStorage(dir, { mapSizeBytes: 1.5 }), 'INVALID_VALUE')
    await expectStorageError(
      () => lmdbStorage(dir, { create: 'yes' as unknown as boolean }),
      'INVALID_VALUE',
    )
    expect(existsSync(dir)).toBe(false)
  })

  it('accepts commitDelayMs and mapSizeBytes', async () => {
    const s = await lmdbStorage(tempDir(), { commitDelayMs: 2, mapSizeBytes: 1 << 24 })
    opened.push(s)
    s.put('k', text('v'))
    await s.sync()
    expect(str(s.get('k'))).toBe('v')
  })
})
