/**
 * `@consul/testkit/storage` — the conformance suite for `StableStorage` implementations.
 * It declares vitest tests for the contract in `@consul/xkernel`'s storage.ts: atomic
 * batches, read-your-writes, ordered scans (Unicode code point order), copy semantics,
 * error cases, close, durability across reopen, and crash semantics when the
 * implementation offers a crash hook.
 *
 * ```ts
 * import { storageSuite } from '@consul/testkit/storage'
 * storageSuite({ name: 'my-store', create: () => openMyStore(tmpDir()) })
 * ```
 */
import {
  compareKeys,
  type Random,
  type ScanOptions,
  type StableStorage,
  StorageError,
  type StorageOp,
  seededRandom,
} from '@consul/xkernel'
import { afterEach, describe, expect, it } from 'vitest'

export interface StorageSetup {
  readonly name: string
  /** A fresh, empty store. */
  create(): Promise<StableStorage> | StableStorage
  /** Closes `storage` and opens the same data again (checks that synced data persists). */
  reopen?(storage: StableStorage): Promise<StableStorage>
  /**
   * Simulates a process crash; returns the store as the restarted process finds it. Needed
   * for the crash-semantics tests (unsynced batches all there or all gone, synced ones kept).
   */
  crash?(storage: StableStorage): Promise<StableStorage> | StableStorage
  /** Releases what `create` made (temp dirs …). */
  destroy?(storage: StableStorage): Promise<void> | void
}

const bytes = (...values: number[]) => new Uint8Array(values)
const text = (s: string) => new TextEncoder().encode(s)

function collect(storage: StableStorage, options?: ScanOptions): [string, string][] {
  return [...storage.scan(options)].map((e) => [e.key, new TextDecoder().decode(e.value)])
}

/** What a scan should return, computed from a plain map. */
function modelScan(model: Map<string, string>, options: ScanOptions = {}): [string, string][] {
  const { prefix = '', start, end, reverse = false, limit = Number.POSITIVE_INFINITY } = options
  let keys = [...model.keys()]
    .filter((k) => k.startsWith(prefix))
    .filter((k) => start === undefined || compareKeys(k, start) >= 0)
    .filter((k) => end === undefined || compareKeys(k, end) < 0)
    .sort(compareKeys)
  if (reverse) keys.reverse()
  keys = keys.slice(0, limit)
  return keys.map((k) => [k, model.get(k)!])
}

function expectStorageError(fn: () => unknown, code: string): void {
  let thrown: unknown
  try {
    fn()
  } catch (error) {
    thrown = error
  }
  expect(thrown, `expected StorageError ${code}`).toBeInstanceOf(StorageError)
  expect((thrown as StorageError).code).toBe(code)
}

async function expectStorageErrorAsync(fn: () => Promise<unknown>, code: string): Promise<void> {
  let thrown: unknown
  try {
    await fn()
  } catch (error) {
    thrown = error
  }
  expect(thrown, `expected StorageError ${code}`).toBeInstanceOf(StorageError)
  expect((thrown as StorageError).code).toBe(code)
}

function randomKey(random: Random): string {
  const alphabet = ['a', 'b', 'c', 'ab', '/', '0', '9', 'é', '\uE000', '\u{1F600}', 'z']
  let key = ''
  const n = 1 + random.int(4)
  for (let i = 0; i < n; i++) key += alphabet[random.int(alphabet.length)]
  return key
}

/** Declares the storage conformance tests for `setup`. */
export function storageSuite(setup: StorageSetup): void {
  describe(`StableStorage conformance: ${setup.name}`, () => {
    let open: StableStorage[] = []
    const fresh = async () => {
      const storage = await setup.create()
      open.push(storage)
      return storage
    }
    afterEach(async () => {
      for (const storage of open) {
        await storage.close().catch(() => {})
        await setup.destroy?.(storage)
      }
      open = []
    })

    it('returns undefined for a missing key and round-trips values', async () => {
      const s = await fresh()
      expect(s.get('missing')).toBeUndefined()
      s.put('k', bytes(1, 2, 3))
      expect(s.get('k')).toEqual(bytes(1, 2, 3))
      s.put('empty', new Uint8Array(0))
      expect(s.get('empty')).toEqual(new Uint8Array(0))
      const big = new Uint8Array(1 << 20)
      for (let i = 0; i < big.length; i++) big[i] = i % 251
      s.put('big', big)
      const got = s.get('big')!
      expect(got.length).toBe(big.length)
      expect(Buffer.compare(got, big)).toBe(0)
      await s.sync()
    })

    it('copies values in and out: callers cannot change what is stored', async () => {
      const s = await fresh()
      const input = bytes(1, 2, 3)
      s.put('k', input)
      input[0] = 99
      const out = s.get('k')!
      expect(out).toEqual(bytes(1, 2, 3))
      out[1] = 99
      expect(s.get('k')).toEqual(bytes(1, 2, 3))
    })

    it('deletes, and deleting a missing key is not an error', async () => {
      const s = await fresh()
      s.put('k', bytes(1))
      s.delete('k')
      expect(s.get('k')).toBeUndefined()
      s.delete('never-written')
      expect(collect(s)).toEqual([])
    })

    it('applies a batch in order: a later op on the same key wins', async () => {
      const s = await fresh()
      s.batch([
        { type: 'put', key: 'a', value: text('1') },
        { type: 'del', key: 'a' },
        { type: 'del', key: 'b' },
        { type: 'put', key: 'b', value: text('2') },
        { type: 'put', key: 'c', value: text('3') },
        { type: 'put', key: 'c', value: text('4') },
      ])
      expect(collect(s)).toEqual([
        ['b', '2'],
        ['c', '4'],
      ])
    })

    it('a batch with a bad op writes nothing', async () => {
      const s = await fresh()
      s.put('keep', text('x'))
      const badKey = [
        { type: 'put', key: 'a', value: text('1') },
        { type: 'put', key: '', value: text('2') },
      ] as StorageOp[]
      expectStorageError(() => s.batch(badKey), 'INVALID_KEY')
      const badValue = [
        { type: 'put', key: 'a', value: text('1') },
        { type: 'put', key: 'b', value: 'not bytes' },
      ] as unknown as StorageOp[]
      expectStorageError(() => s.batch(badValue), 'INVALID_VALUE')
      expect(collect(s)).toEqual([['keep', 'x']])
    })

    it('rejects bad keys and values with StorageError codes', async () => {
      const s = await fresh()
      expectStorageError(() => s.put('', bytes(1)), 'INVALID_KEY')
      expectStorageError(() => s.get(42 as unknown as string), 'INVALID_KEY')
      expectStorageError(() => s.put('x'.repeat(501), bytes(1)), 'INVALID_KEY')
      expectStorageError(() => s.put('é'.repeat(251), bytes(1)), 'INVALID_KEY')
      s.put('x'.repeat(500), bytes(1))
      expect(s.get('x'.repeat(500))).toEqual(bytes(1))
      expectStorageError(() => s.put('k', [1, 2] as unknown as Uint8Array), 'INVALID_VALUE')
      expectStorageError(() => s.batch('nope' as unknown as StorageOp[]), 'INVALID_VALUE')
    })

    it('reads its own writes before any sync', async () => {
      const s = await fresh()
      s.batch([
        { type: 'put', key: 'log/1', value: text('a') },
        { type: 'put', key: 'log/2', value: text('b') },
      ])
      s.delete('log/1')
      expect(s.get('log/2')).toEqual(text('b'))
      expect(collect(s, { prefix: 'log/' })).toEqual([['log/2', 'b']])
    })

    it('scans in Unicode code point order with prefix, start, end, reverse and limit', async () => {
      const s = await fresh()
      const keys = ['b', 'a', 'ab', 'a/2', 'a/10', 'a/1', '\uE000', '\u{1F600}', 'é', 'Z', '0']
      s.batch(keys.map((k) => ({ type: 'put', key: k, value: text(k) })))
      const model = new Map(keys.map((k) => [k, k]))
      const cases: ScanOptions[] = [
        {},
        { prefix: 'a' },
        { prefix: 'a/' },
        { start: 'a/1' },
        { end: 'b' },
        { start: 'a/10', end: 'ab' },
        { reverse: true },
        { prefix: 'a', reverse: true, limit: 2 },
        { limit: 3 },
        { limit: 0 },
        { prefix: 'nothing' },
        { start: 'z' },
        { prefix: 'a', start: 'a/2', end: 'b' },
        { start: '\uE000' },
      ]
      for (const options of cases) {
        expect(collect(s, options), JSON.stringify(options)).toEqual(modelScan(model, options))
      }
      // Astral characters sort above U+E000..U+FFFF, as in UTF-8 byte order.
      expect(
        collect(s)
          .map(([k]) => k)
          .slice(-2),
      ).toEqual(['\uE000', '\u{1F600}'])
    })

    it('matches a simple model over random operations', async () => {
      const s = await fresh()
      const random = seededRandom(20240601)
      const model = new Map<string, string>()
      for (let step = 0; step < 400; step++) {
        const choice = random.int(10)
        if (choice < 5) {
          const ops: StorageOp[] = []
          for (let i = 0, n = 1 + random.int(4); i < n; i++) {
            const key = randomKey(random)
            if (random.int(4) === 0) ops.push({ type: 'del', key })
            else ops.push({ type: 'put', key, value: text(`${step}.${i}`) })
          }
          s.batch(ops)
          for (const op of ops) {
            if (op.type === 'put') model.set(op.key, new TextDecoder().decode(op.value))
            else model.delete(op.key)
          }
        } else if (choice < 7) {
          const key = randomKey(random)
          const got = s.get(key)
          expect(got === undefined ? undefined : new TextDecoder().decode(got)).toBe(model.get(key))
        } else if (choice < 9) {
          const options: ScanOptions = {
            ...(random.int(2) === 0 ? { prefix: randomKey(random).slice(0, 1) } : {}),
            ...(random.int(3) === 0 ? { start: randomKey(random) } : {}),
            ...(random.int(3) === 0 ? { end: randomKey(random) } : {}),
            ...(random.int(2) === 0 ? { reverse: true } : {}),
            ...(random.int(3) === 0 ? { limit: random.int(5) } : {}),
          }
          expect(collect(s, options), JSON.stringify(options)).toEqual(modelScan(model, options))
        } else {
          await s.sync()
        }
      }
    })

    it('sync resolves, and with every write covered', async () => {
      const s = await fresh()
      for (let i = 0; i < 100; i++) s.put(`k/${String(i).padStart(3, '0')}`, text(String(i)))
      await expect(s.sync()).resolves.toBeUndefined()
      expect(collect(s, { prefix: 'k/' })).toHaveLength(100)
    })

    it('throws StorageError CLOSED after close', async () => {
      const s = await fresh()
      s.put('k', bytes(1))
      await s.close()
      expectStorageError(() => s.get('k'), 'CLOSED')
      expectStorageError(() => s.put('k', bytes(2)), 'CLOSED')
      expectStorageError(() => s.batch([{ type: 'del', key: 'k' }]), 'CLOSED')
      expectStorageError(() => [...s.scan()], 'CLOSED')
      await expectStorageErrorAsync(() => s.sync(), 'CLOSED')
    })

    if (setup.reopen !== undefined) {
      const reopen = setup.reopen
      it('keeps synced data across close and reopen', async () => {
        const s = await fresh()
        s.batch([
          { type: 'put', key: 'a', value: text('1') },
          { type: 'put', key: 'b', value: text('2') },
        ])
        s.delete('a')
        await s.sync()
        const again = await reopen(s)
        open.push(again)
        expect(collect(again)).toEqual([['b', '2']])
      })
    }

    if (setup.crash !== undefined) {
      const crash = setup.crash
      it('a crash keeps every synced batch and leaves each unsynced batch whole or absent', async () => {
        const s = await fresh()
        const batch = (n: number): StorageOp[] =>
          ['a', 'b', 'c'].map((part) => ({
            type: 'put',
            key: `batch/${n}/${part}`,
            value: text(String(n)),
          }))
        for (let n = 0; n < 10; n++) s.batch(batch(n))
        await s.sync()
        for (let n = 10; n < 20; n++) s.batch(batch(n))
        const after = await crash(s)
        open.push(after)
        const present = new Map<number, number>()
        for (const { key } of after.scan({ prefix: 'batch/' })) {
          const n = Number(key.split('/')[1])
          present.set(n, (present.get(n) ?? 0) + 1)
        }
        for (let n = 0; n < 10; n++) expect(present.get(n), `synced batch ${n}`).toBe(3)
        for (const [n, count] of present) expect(count, `batch ${n} partly there`).toBe(3)
      })

      it('a crash loses an unsynced delete or keeps it whole, never half', async () => {
        const s = await fresh()
        s.batch([
          { type: 'put', key: 'x', value: text('1') },
          { type: 'put', key: 'y', value: text('1') },
        ])
        await s.sync()
        s.batch([
          { type: 'del', key: 'x' },
          { type: 'del', key: 'y' },
        ])
        const after = await crash(s)
        open.push(after)
        const left = collect(after).map(([k]) => k)
        expect([['x', 'y'], []]).toContainEqual(left)
      })
    }
  })
}
