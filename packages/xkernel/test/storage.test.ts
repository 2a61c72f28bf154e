import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  compareKeys,
  MAX_KEY_BYTES,
  MemoryStorage,
  memoryStorage,
  prefixEnd,
  type ScanOptions,
  type StableStorage,
  StorageCorruptedError,
  StorageError,
  type StorageErrorCode,
  type StorageOp,
  scopedStorage,
  seededRandom,
  validateKey,
} from '../src/index.js'
import { flushMicrotasks } from './fakes.js'

const bytes = (...values: number[]) => Uint8Array.from(values)
const text = (value: Uint8Array | undefined) =>
  value === undefined ? undefined : new TextDecoder().decode(value)
const utf8 = (value: string) => new TextEncoder().encode(value)

/** Code-point order computed independently: compare the UTF-8 encodings byte by byte. */
function utf8Order(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'))
}

function entries(storage: StableStorage, options?: ScanOptions): [string, string][] {
  return [...storage.scan(options)].map(({ key, value }) => [key, text(value)!])
}

function storageError(run: () => unknown): StorageError {
  try {
    run()
  } catch (error) {
    expect(error).toBeInstanceOf(StorageError)
    return error as StorageError
  }
  throw new Error('expected a StorageError')
}

function expectCode(run: () => unknown, code: StorageErrorCode | 'CORRUPTED'): void {
  expect(storageError(run).code).toBe(code)
}

/** A few characters chosen to make code-point order and UTF-16 order disagree. */
const keyAlphabet = ['a', 'b', '/', 'é', '\uE000', '\uFFFF', '😀', '\u{10000}', 'z']
const arbKey = fc.string({ unit: fc.constantFrom(...keyAlphabet), minLength: 1, maxLength: 4 })

describe('compareKeys', () => {
  it('orders by code point, putting astral characters after U+E000..U+FFFF', () => {
    // UTF-16 unit order gets these wrong: the surrogate 0xD83D sorts below 0xE000.
    expect('😀' < '\uE000').toBe(true)
    expect(compareKeys('😀', '\uE000')).toBeGreaterThan(0)
    expect(compareKeys('\uFFFF', '\u{10000}')).toBeLessThan(0)
    expect(compareKeys('\uD7FF', '\u{10000}')).toBeLessThan(0)
    expect(compareKeys('a', 'ab')).toBeLessThan(0)
    expect(compareKeys('ab', 'ab')).toBe(0)
  })

  it('agrees with UTF-8 byte order on any strings', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), fc.string({ unit: 'binary' }), (a, b) => {
        expect(Math.sign(compareKeys(a, b))).toBe(Math.sign(utf8Order(a, b)))
      }),
      { numRuns: 5000 },
    )
  })

  it('prefixEnd(p) is above every key starting with p that has no U+10FFFF', () => {
    expect(compareKeys('a\u{10FFFE}zz', prefixEnd('a'))).toBeLessThan(0)
    expect(compareKeys('a😀', prefixEnd('a'))).toBeLessThan(0)
    expect(compareKeys('b', prefixEnd('a'))).toBeGreaterThan(0)
  })
})

describe('MemoryStorage basics', () => {
  it('returns copies: neither the writer nor the reader can change a stored value', () => {
    const storage = memoryStorage()
    const value = bytes(1, 2, 3)
    storage.put('k', value)
    value[0] = 99
    const read = storage.get('k')!
    expect(Array.from(read)).toEqual([1, 2, 3])
    read[1] = 99
    expect(Array.from(storage.get('k')!)).toEqual([1, 2, 3])
    expect(storage.get('missing')).toBeUndefined()
  })

  it('reads its own writes before any sync', () => {
    const storage = memoryStorage()
    storage.put('a', utf8('1'))
    storage.batch([
      { type: 'put', key: 'b', value: utf8('2') },
      { type: 'del', key: 'a' },
    ])
    expect(storage.get('a')).toBeUndefined()
    expect(text(storage.get('b'))).toBe('2')
    expect(storage.size).toBe(1)
    storage.delete('b')
    storage.delete('never-existed')
    expect(storage.size).toBe(0)
  })

  it('applies a batch in order: a later op on the same key wins', () => {
    const storage = memoryStorage()
    storage.batch([
      { type: 'put', key: 'k', value: utf8('1') },
      { type: 'put', key: 'k', value: utf8('2') },
      { type: 'del', key: 'j' },
      { type: 'put', key: 'j', value: utf8('3') },
    ])
    expect(entries(storage)).toEqual([
      ['j', '3'],
      ['k', '2'],
    ])
  })

  it('writes nothing when any op of a batch is invalid', () => {
    const storage = memoryStorage()
    storage.put('keep', utf8('old'))
    const invalid: unknown[] = [
      { type: 'put', key: '', value: utf8('x') },
      { type: 'put', key: 'x'.repeat(MAX_KEY_BYTES + 1), value: utf8('x') },
      { type: 'put', key: 'v', value: 'not bytes' },
      { type: 'put', key: 'v', value: [1, 2] },
      { type: 'put', key: 'v' },
      { type: 'upsert', key: 'v', value: utf8('x') },
      { type: 'del', key: 7 },
      null,
    ]
    for (const bad of invalid) {
      const ops = [
        { type: 'put', key: 'keep', value: utf8('new') },
        { type: 'put', key: 'fresh', value: utf8('new') },
        bad,
      ] as StorageOp[]
      const error = storageError(() => storage.batch(ops))
      expect(['INVALID_KEY', 'INVALID_VALUE']).toContain(error.code)
      expect(entries(storage)).toEqual([['keep', 'old']])
    }
    expect(storage.counters.batches).toBe(1)
    expectCode(() => storage.batch('ops' as unknown as StorageOp[]), 'INVALID_VALUE')
  })

  it('validates keys and values with INVALID_KEY / INVALID_VALUE', () => {
    const storage = memoryStorage()
    expectCode(() => storage.get(''), 'INVALID_KEY')
    expectCode(() => storage.get(5 as unknown as string), 'INVALID_KEY')
    expectCode(() => storage.put('', bytes(1)), 'INVALID_KEY')
    expectCode(() => storage.delete(''), 'INVALID_KEY')
    expectCode(() => storage.put('k', 'v' as unknown as Uint8Array), 'INVALID_VALUE')
    // 500 UTF-8 bytes is the limit, whatever the number of UTF-16 units.
    storage.put('x'.repeat(MAX_KEY_BYTES), bytes(1))
    storage.put('€'.repeat(166), bytes(1)) // 498 bytes
    expectCode(() => storage.put('€'.repeat(167), bytes(1)), 'INVALID_KEY') // 501 bytes
    expectCode(() => storage.put('😀'.repeat(126), bytes(1)), 'INVALID_KEY') // 504 bytes
    expectCode(() => storage.put('x'.repeat(MAX_KEY_BYTES + 1), bytes(1)), 'INVALID_KEY')
    expect(() => validateKey('ok')).not.toThrow()
    expectCode(() => validateKey(null), 'INVALID_KEY')
    // A Buffer is a Uint8Array, so it is accepted.
    storage.put('buffer', Buffer.from('hi'))
    expect(text(storage.get('buffer'))).toBe('hi')
    expect(storage.size).toBe(3)
  })

  it('throws StorageError CLOSED after close(), and reopen() brings the data back', async () => {
    const storage = memoryStorage()
    storage.put('k', bytes(1))
    await storage.close()
    await storage.close() // idempotent
    expectCode(() => storage.get('k'), 'CLOSED')
    expectCode(() => storage.put('k', bytes(2)), 'CLOSED')
    expectCode(() => storage.delete('k'), 'CLOSED')
    expectCode(() => storage.batch([]), 'CLOSED')
    // sync() throws synchronously rather than returning a rejected promise.
    expectCode(() => storage.sync(), 'CLOSED')
    // scan() is a generator: it throws when iterated, not when called.
    const scan = storage.scan()
    expectCode(() => [...scan], 'CLOSED')
    storage.reopen()
    expect(Array.from(storage.get('k')!)).toEqual([1])
  })

  it('names the store in its errors', async () => {
    const storage = new MemoryStorage({ name: 'disk-7' })
    await storage.close()
    expect(storageError(() => storage.get('k')).message).toContain('disk-7')
  })
})

describe('MemoryStorage scan', () => {
  it('returns what a filter-and-sort model returns, for any keys and options', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(arbKey, { maxLength: 25 }),
        fc.record(
          {
            prefix: fc.string({ unit: fc.constantFrom(...keyAlphabet), maxLength: 2 }),
            start: fc.string({ unit: fc.constantFrom(...keyAlphabet), maxLength: 3 }),
            end: fc.string({ unit: fc.constantFrom(...keyAlphabet), maxLength: 3 }),
            reverse: fc.boolean(),
            limit: fc.nat({ max: 30 }),
          },
          { requiredKeys: [] },
        ),
        (keys, options) => {
          const storage = memoryStorage()
          // Insert in a scrambled order so the sorted index does real work.
          for (const key of [...keys].reverse()) storage.put(key, utf8(key))
          const expected = keys
            .filter((k) => k.startsWith(options.prefix ?? ''))
            .filter((k) => options.start === undefined || utf8Order(k, options.start) >= 0)
            .filter((k) => options.end === undefined || utf8Order(k, options.end) < 0)
            .sort(utf8Order)
          if (options.reverse) expected.reverse()
          const limited = expected.slice(0, options.limit ?? expected.length)
          expect(entries(storage, options)).toEqual(limited.map((k) => [k, k]))
        },
      ),
      { numRuns: 3000 },
    )
  })

  it('handles prefix, start, end, reverse and limit on a log-like key space', () => {
    const storage = memoryStorage()
    for (const key of ['log/003', 'log/001', 'log/002', 'log0', 'loh', 'lo', 'meta']) {
      storage.put(key, utf8(key))
    }
    const keys = (options: ScanOptions) => entries(storage, options).map(([k]) => k)
    expect(keys({})).toEqual(['lo', 'log/001', 'log/002', 'log/003', 'log0', 'loh', 'meta'])
    expect(keys({ prefix: 'log/' })).toEqual(['log/001', 'log/002', 'log/003'])
    expect(keys({ prefix: 'log/', start: 'log/002' })).toEqual(['log/002', 'log/003'])
    expect(keys({ prefix: 'log/', end: 'log/003' })).toEqual(['log/001', 'log/002'])
    expect(keys({ prefix: 'log/', start: 'a' })).toEqual(['log/001', 'log/002', 'log/003'])
    expect(keys({ prefix: 'log/', start: 'm' })).toEqual([])
    expect(keys({ prefix: 'log/', reverse: true, limit: 2 })).toEqual(['log/003', 'log/002'])
    expect(keys({ start: 'log0', end: 'meta' })).toEqual(['log0', 'loh'])
    expect(keys({ start: 'z', end: 'a' })).toEqual([])
    expect(keys({ limit: 0 })).toEqual([])
    expect(keys({ prefix: 'nothing' })).toEqual([])
  })

  it('iterates a snapshot of the key range: writes during the scan do not shift it', () => {
    const storage = memoryStorage()
    for (const key of ['a', 'b', 'c']) storage.put(key, utf8(key))
    const seen: string[] = []
    for (const { key } of storage.scan()) {
      seen.push(key)
      if (key === 'a') {
        storage.delete('b')
        storage.put('bb', utf8('bb'))
      }
    }
    expect(seen).toEqual(['a', 'c'])
  })
})

// ---- crash model ------------------------------------------------------------------------------

type Step =
  | { readonly t: 'batch'; readonly ops: readonly StorageOp[]; readonly valid: boolean }
  | { readonly t: 'sync' }
  | { readonly t: 'syncNoWait' }
  | { readonly t: 'tick' }
  | { readonly t: 'crash' }

const arbModelKey = fc.constantFrom('a', 'b', 'c', 'log/1', 'log/2', '😀', '\uE000')
const arbValidOp: fc.Arbitrary<StorageOp> = fc.oneof(
  fc.record({
    type: fc.constant('put' as const),
    key: arbModelKey,
    value: fc.uint8Array({ maxLength: 3 }),
  }),
  fc.record({ type: fc.constant('del' as const), key: arbModelKey }),
)
const arbInvalidOp = fc.constantFrom(
  { type: 'put', key: '', value: bytes(1) },
  { type: 'put', key: 'a', value: 'x' },
  { type: 'nope', key: 'a' },
) as fc.Arbitrary<StorageOp>
const arbStep: fc.Arbitrary<Step> = fc.oneof(
  {
    arbitrary: fc
      .array(arbValidOp, { maxLength: 4 })
      .map((ops) => ({ t: 'batch' as const, ops, valid: true })),
    weight: 6,
  },
  {
    arbitrary: fc
      .tuple(fc.array(arbValidOp, { maxLength: 3 }), arbInvalidOp, fc.nat())
      .map(([ops, bad, at]) => {
        const withBad = [...ops]
        withBad.splice(at % (ops.length + 1), 0, bad)
        return { t: 'batch' as const, ops: withBad, valid: false }
      }),
    weight: 1,
  },
  { arbitrary: fc.constant({ t: 'sync' as const }), weight: 2 },
  { arbitrary: fc.constant({ t: 'syncNoWait' as const }), weight: 2 },
  { arbitrary: fc.constant({ t: 'tick' as const }), weight: 1 },
  { arbitrary: fc.constant({ t: 'crash' as const }), weight: 2 },
)

type Model = Map<string, string>
const show = (value: Uint8Array) => Array.from(value).join(',')

function snapshot(storage: MemoryStorage): [string, string][] {
  return [...storage.scan()].map(({ key, value }) => [key, show(value)])
}

function modelEntries(model: Model): [string, string][] {
  return [...model.entries()].sort(([a], [b]) => utf8Order(a, b))
}

describe('MemoryStorage crash', () => {
  it('loses exactly the batches no completed sync covered (model-based)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(arbStep, { maxLength: 30 }), async (steps) => {
        const storage = memoryStorage()
        let current: Model = new Map()
        let durable: Model = new Map()
        // Syncs called and not yet completed, each with the state it covers.
        let pending: { covers: Model; settled: () => boolean }[] = []
        const abandoned: (() => boolean)[] = []
        const track = (promise: Promise<void>) => {
          let settled = false
          promise.then(
            () => (settled = true),
            () => (settled = true),
          )
          return () => settled
        }
        const completeAll = () => {
          const last = pending[pending.length - 1]
          if (last !== undefined) durable = new Map(last.covers)
          pending = []
        }
        for (const step of steps) {
          switch (step.t) {
            case 'batch':
              if (step.valid) {
                storage.batch(step.ops)
                for (const op of step.ops) {
                  if (op.type === 'put') current.set(op.key, show(op.value))
                  else current.delete(op.key)
                }
              } else {
                expect(() => storage.batch(step.ops)).toThrow(StorageError)
              }
              break
            case 'syncNoWait':
              pending.push({ covers: new Map(current), settled: track(storage.sync()) })
              break
            case 'sync': {
              const promise = storage.sync()
              pending.push({ covers: new Map(current), settled: () => true })
              await promise
              completeAll()
              break
            }
            case 'tick':
              await flushMicrotasks()
              for (const p of pending) expect(p.settled()).toBe(true)
              completeAll()
              break
            case 'crash':
              storage.crash()
              for (const p of pending) abandoned.push(p.settled)
              pending = []
              current = new Map(durable)
              break
          }
          expect(snapshot(storage)).toEqual(modelEntries(current))
        }
        await flushMicrotasks()
        // A sync in flight when the process crashed never settles.
        for (const settled of abandoned) expect(settled()).toBe(false)
      }),
      { numRuns: 400 },
    )
  })

  it('a sync covers only the batches written before it was called', async () => {
    let complete: (() => void) | undefined
    const storage = new MemoryStorage({ scheduleSync: (done) => (complete = done) })
    storage.put('before', bytes(1))
    const synced = storage.sync()
    storage.put('after', bytes(2))
    expect(storage.unsyncedBatches).toBe(2)
    complete!()
    await synced
    expect(storage.unsyncedBatches).toBe(1)
    storage.crash()
    expect(storage.get('before')).toBeDefined()
    expect(storage.get('after')).toBeUndefined()
    expect(storage.counters).toMatchObject({ batches: 2, syncs: 1, crashes: 1, rolledBack: 1 })
  })

  it('never settles a sync in flight at the crash, even if the disk completes it later', async () => {
    let complete: (() => void) | undefined
    const storage = new MemoryStorage({ scheduleSync: (done) => (complete = done) })
    storage.put('k', bytes(1))
    let settled = false
    storage.sync().then(
      () => (settled = true),
      () => (settled = true),
    )
    storage.crash()
    complete!()
    await flushMicrotasks()
    expect(settled).toBe(false)
    expect(storage.get('k')).toBeUndefined()
    // The store stays usable for the restarted process.
    storage.put('k', bytes(2))
    const again = storage.sync()
    complete!()
    await again
    storage.crash()
    expect(Array.from(storage.get('k')!)).toEqual([2])
  })

  it('restores overwritten and deleted synced values', async () => {
    const storage = memoryStorage()
    storage.batch([
      { type: 'put', key: 'a', value: utf8('a0') },
      { type: 'put', key: 'b', value: utf8('b0') },
    ])
    await storage.sync()
    storage.put('a', utf8('a1'))
    storage.delete('b')
    storage.put('c', utf8('c1'))
    storage.crash()
    expect(entries(storage)).toEqual([
      ['a', 'a0'],
      ['b', 'b0'],
    ])
  })

  it('crash({ corrupt }) leaves one record of the last batch that throws StorageCorruptedError', async () => {
    const kinds = new Set<string>()
    for (let seed = 0; seed < 40; seed++) {
      const storage = new MemoryStorage({ name: 'disk-a' })
      storage.put('synced', utf8('safe'))
      await storage.sync()
      storage.put('k1', utf8('older batch'))
      storage.batch([
        { type: 'put', key: 'k1', value: utf8('value-1') },
        { type: 'put', key: 'k2', value: utf8('value-2') },
      ])
      storage.crash({ corrupt: { probability: 1, random: seededRandom(seed) } })
      expect(storage.counters.corrupted).toBe(1)
      expect(text(storage.get('synced'))).toBe('safe')
      const damaged = ['k1', 'k2'].filter((key) => {
        try {
          // A key that is not damaged is rolled back: it was never synced.
          expect(storage.get(key)).toBeUndefined()
          return false
        } catch (error) {
          expect(error).toBeInstanceOf(StorageCorruptedError)
          const corrupted = error as StorageCorruptedError
          expect(corrupted.code).toBe('CORRUPTED')
          expect(corrupted.key).toBe(key)
          expect(corrupted.location).toBe('disk-a')
          expect(corrupted.message).toContain(JSON.stringify(key))
          kinds.add(corrupted.message.includes('torn') ? 'torn' : 'bit flip')
          return true
        }
      })
      expect(damaged).toHaveLength(1)
      // Reads through scan meet the damaged record too, and never return its bytes.
      expect(() => [...storage.scan()]).toThrow(StorageCorruptedError)
      // Overwriting the record repairs it.
      storage.put(damaged[0]!, utf8('fresh'))
      expect(text(storage.get(damaged[0]!))).toBe('fresh')
    }
    expect(kinds).toEqual(new Set(['torn', 'bit flip']))
  })

  it('crash({ corrupt }) with probability 0, or nothing unsynced, damages nothing', async () => {
    const storage = memoryStorage()
    storage.put('a', bytes(1))
    storage.crash({ corrupt: { probability: 0, random: seededRandom(1) } })
    await storage.sync()
    storage.put('b', bytes(2))
    await storage.sync()
    storage.crash({ corrupt: { probability: 1, random: seededRandom(1) } })
    expect(storage.counters.corrupted).toBe(0)
    expect(entries(storage).map(([k]) => k)).toEqual(['b'])
  })
})

describe('scopedStorage', () => {
  it('isolates scopes that share one store, with relative keys', async () => {
    const base = memoryStorage()
    const g1 = scopedStorage(base, 'psync/g1/')
    const g2 = scopedStorage(base, 'psync/g2/')
    g1.put('seq', utf8('1'))
    g2.put('seq', utf8('2'))
    g1.batch([
      { type: 'put', key: 'log/1', value: utf8('x') },
      { type: 'put', key: 'log/2', value: utf8('y') },
    ])
    expect(text(g1.get('seq'))).toBe('1')
    expect(text(g2.get('seq'))).toBe('2')
    expect(entries(g1)).toEqual([
      ['log/1', 'x'],
      ['log/2', 'y'],
      ['seq', '1'],
    ])
    expect(entries(g2)).toEqual([['seq', '2']])
    expect(entries(g1, { prefix: 'log/', reverse: true, limit: 1 })).toEqual([['log/2', 'y']])
    expect(entries(g1, { start: 'log/2', end: 'seq' })).toEqual([['log/2', 'y']])
    expect(entries(base).map(([k]) => k)).toEqual([
      'psync/g1/log/1',
      'psync/g1/log/2',
      'psync/g1/seq',
      'psync/g2/seq',
    ])
    g2.delete('seq')
    expect(g2.get('seq')).toBeUndefined()
    expect(text(g1.get('seq'))).toBe('1')
    // Closing a scope does not close the store it views.
    await g1.close()
    expect(text(g1.get('seq'))).toBe('1')
    // sync goes to the store.
    await g1.sync()
    base.crash()
    expect(text(base.get('psync/g1/seq'))).toBe('1')
  })

  it('keeps the store atomic and validated through a scope', () => {
    const base = memoryStorage()
    const scope = scopedStorage(base, 'p/')
    scope.put('keep', utf8('old'))
    const invalid: unknown[] = [
      { type: 'put', key: '', value: bytes(1) },
      { type: 'put', key: 'v', value: 'text' },
      { type: 'upsert', key: 'keep', value: bytes(1) },
      { type: 'erase', key: 'keep' },
      null,
    ]
    for (const bad of invalid) {
      const ops = [{ type: 'put', key: 'fresh', value: bytes(1) }, bad] as StorageOp[]
      const error = storageError(() => scope.batch(ops))
      expect(['INVALID_KEY', 'INVALID_VALUE']).toContain(error.code)
    }
    expect(entries(base)).toEqual([['p/keep', 'old']])
    expectCode(() => scope.get(''), 'INVALID_KEY')
    expectCode(() => scope.put('', bytes(1)), 'INVALID_KEY')
  })
})
