/**
 * Property test: random sequences of batch / get / scan / sync / turn / reopen give the same
 * results on LMDB as on MemoryStorage (the model). Turns let some commits land between
 * writes, so reads merge committed data with pending batches in every proportion.
 */
import { MemoryStorage, type ScanOptions, type StorageOp } from '@consul/xkernel'
import fc from 'fast-check'
import { afterAll, describe, expect, it } from 'vitest'
import { type LmdbStorage, lmdbStorage } from '../src/index.js'
import { nextTurn, removeTempDirs, str, tempDir, text } from './helpers.js'

afterAll(removeTempDirs)

const key = fc
  .array(
    fc.constantFrom('a', 'b', '/', '0', '9', 'é', '\uE000', '\uFFFF', '\u{1F600}', '\u{10000}'),
    {
      minLength: 1,
      maxLength: 4,
    },
  )
  .map((parts) => parts.join(''))

const op: fc.Arbitrary<StorageOp> = fc.oneof(
  fc.record({ type: fc.constant('put' as const), key, value: fc.uint8Array({ maxLength: 8 }) }),
  fc.record({ type: fc.constant('del' as const), key }),
)

// Bounds are sometimes cut in code units, so a prefix or bound can end in half a surrogate
// pair (MemoryStorage compares such strings fine; LMDB bounds have to widen around them).
const bound = fc.oneof(
  key,
  fc.tuple(key, fc.nat(4)).map(([k, n]) => k.slice(0, 1 + n)),
)
const scanOptions: fc.Arbitrary<ScanOptions> = fc.record(
  {
    prefix: fc.tuple(key, fc.nat(3)).map(([k, n]) => k.slice(0, n)),
    start: bound,
    end: bound,
    reverse: fc.boolean(),
    limit: fc.nat(8),
  },
  { requiredKeys: [] },
)

type Action =
  | { readonly kind: 'batch'; readonly ops: StorageOp[] }
  | { readonly kind: 'get'; readonly key: string }
  | { readonly kind: 'scan'; readonly options: ScanOptions }
  | { readonly kind: 'sync' }
  | { readonly kind: 'turn' }
  | { readonly kind: 'reopen' }

const action: fc.Arbitrary<Action> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('batch' as const),
      ops: fc.array(op, { minLength: 1, maxLength: 5 }),
    }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('get' as const), key }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('scan' as const), options: scanOptions }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'sync' as const }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'turn' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'reopen' as const }) },
)

const entries = (
  s: { scan(o?: ScanOptions): Iterable<{ key: string; value: Uint8Array }> },
  o?: ScanOptions,
) => [...s.scan(o)].map((e) => [e.key, [...e.value]])

describe('LMDB storage against the MemoryStorage model', () => {
  it('gives identical results for random operation sequences', async () => {
    let pendingSeen = 0
    await fc.assert(
      fc.asyncProperty(fc.array(action, { minLength: 1, maxLength: 40 }), async (actions) => {
        const dir = tempDir('model')
        const model = new MemoryStorage()
        let store: LmdbStorage = await lmdbStorage(dir)
        try {
          for (const a of actions) {
            switch (a.kind) {
              case 'batch':
                store.batch(a.ops)
                model.batch(a.ops)
                break
              case 'get':
                if (store.stats().pendingBatches > 0) pendingSeen++
                expect(str(store.get(a.key))).toBe(str(model.get(a.key)))
                break
              case 'scan':
                if (store.stats().pendingBatches > 0) pendingSeen++
                expect(entries(store, a.options), JSON.stringify(a.options)).toEqual(
                  entries(model, a.options),
                )
                break
              case 'sync':
                await store.sync()
                expect(store.stats().pendingBatches).toBe(0)
                break
              case 'turn':
                await nextTurn()
                break
              case 'reopen':
                await store.close()
                store = await lmdbStorage(dir)
                break
            }
          }
          // Whatever happened, a final full scan agrees, before and after everything lands.
          expect(entries(store)).toEqual(entries(model))
          await store.sync()
          expect(entries(store)).toEqual(entries(model))
          await store.close()
          store = await lmdbStorage(dir)
          expect(entries(store)).toEqual(entries(model))
        } finally {
          await store.close()
        }
      }),
      { numRuns: 100 },
    )
    // The reads really exercised the overlay (pending batches merged with committed data).
    expect(pendingSeen).toBeGreaterThan(0)
  })

  it('reads written values back byte for byte (values with every byte)', async () => {
    const s = await lmdbStorage(tempDir('bytes'))
    const all = Uint8Array.from({ length: 256 }, (_, i) => i)
    s.put('all-bytes', all)
    expect(s.get('all-bytes')).toEqual(all)
    await s.sync()
    expect(s.get('all-bytes')).toEqual(all)
    expect(text('x')).toEqual(Uint8Array.of(0x78))
    await s.close()
  })
})
