import { compareKeys, type ScanOptions } from '@consul/xkernel'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { inScanRange, scanRange } from '../src/key-range.js'
import { mergeScan, Overlay, type PendingEntry } from '../src/overlay.js'

type Op = PendingEntry<string>

/** The merged view as (key, value, source) triples, for a committed map and an overlay. */
function merged(committed: Map<string, string>, overlay: Overlay<string>, options?: ScanOptions) {
  const range = scanRange(options)
  const keys = [...committed.keys()].filter((k) => inScanRange(range, k)).sort(compareKeys)
  if (range.reverse) keys.reverse()
  const iterator = keys.map((key) => ({ key, value: committed.get(key)! }))[Symbol.iterator]()
  return [...mergeScan(iterator, overlay.entries(range), range)].map((e) => [
    e.key,
    e.value,
    e.source,
  ])
}

describe('Overlay', () => {
  it('shows the newest pending op per key, tombstones included', () => {
    const overlay = new Overlay<string>()
    overlay.apply(1, [
      { key: 'a', value: 'a1' },
      { key: 'b', value: 'b1' },
    ])
    overlay.apply(2, [
      { key: 'a', value: undefined },
      { key: 'c', value: 'c2' },
    ])
    expect(overlay.lookup('a')).toEqual({ key: 'a', value: undefined })
    expect(overlay.lookup('b')).toEqual({ key: 'b', value: 'b1' })
    expect(overlay.lookup('z')).toBeUndefined()
    expect(overlay.pendingBatches).toBe(2)
    expect(overlay.entries(scanRange({}))).toEqual([
      { key: 'a', value: undefined },
      { key: 'b', value: 'b1' },
      { key: 'c', value: 'c2' },
    ])
  })

  it('settling a batch keeps keys a later pending batch overwrote', () => {
    const overlay = new Overlay<string>()
    overlay.apply(1, [
      { key: 'a', value: 'a1' },
      { key: 'b', value: 'b1' },
    ])
    overlay.apply(2, [{ key: 'b', value: 'b2' }])
    overlay.apply(3, [{ key: 'c', value: undefined }])
    overlay.settle(1)
    expect(overlay.lookup('a')).toBeUndefined()
    expect(overlay.lookup('b')).toEqual({ key: 'b', value: 'b2' })
    expect(overlay.lookup('c')).toEqual({ key: 'c', value: undefined })
    expect(overlay.pendingBatches).toBe(2)
    expect(overlay.entries(scanRange({})).map((e) => e.key)).toEqual(['b', 'c'])
    overlay.settle(3)
    expect(overlay.size).toBe(0)
    expect(overlay.pendingBatches).toBe(0)
    expect(overlay.entries(scanRange({}))).toEqual([])
  })

  it('settling an old batch number again changes nothing', () => {
    const overlay = new Overlay<string>()
    overlay.apply(1, [{ key: 'a', value: 'a1' }])
    overlay.settle(1)
    overlay.apply(2, [{ key: 'a', value: 'a2' }])
    overlay.settle(1)
    expect(overlay.lookup('a')).toEqual({ key: 'a', value: 'a2' })
  })

  it('keeps many unsettled batches in order across compaction of its queue', () => {
    const overlay = new Overlay<string>()
    for (let n = 1; n <= 5000; n++) overlay.apply(n, [{ key: `k/${n % 10}`, value: String(n) }])
    overlay.settle(4990)
    expect(overlay.pendingBatches).toBe(10)
    for (let r = 0; r < 10; r++) {
      expect(overlay.lookup(`k/${r}`)?.value).toBe(String(4990 + (r === 0 ? 10 : r)))
    }
    overlay.settle(4995)
    expect(overlay.pendingBatches).toBe(5)
    expect(overlay.lookup('k/1')).toBeUndefined()
    expect(overlay.lookup('k/6')?.value).toBe('4996')
  })

  it('returns a copy from entries(): later writes do not change a scan in progress', () => {
    const overlay = new Overlay<string>()
    overlay.apply(1, [{ key: 'a', value: '1' }])
    const snapshot = overlay.entries(scanRange({}))
    overlay.apply(2, [{ key: 'b', value: '2' }])
    overlay.settle(2)
    expect(snapshot).toEqual([{ key: 'a', value: '1' }])
  })
})

describe('mergeScan', () => {
  it('lets pending ops replace and delete committed entries, in both directions', () => {
    const committed = new Map([
      ['a', 'A'],
      ['b', 'B'],
      ['d', 'D'],
    ])
    const overlay = new Overlay<string>()
    overlay.apply(1, [
      { key: 'b', value: undefined },
      { key: 'c', value: 'c1' },
      { key: 'd', value: 'd1' },
      { key: 'e', value: undefined },
    ])
    expect(merged(committed, overlay)).toEqual([
      ['a', 'A', 'committed'],
      ['c', 'c1', 'pending'],
      ['d', 'd1', 'pending'],
    ])
    expect(merged(committed, overlay, { reverse: true, limit: 2 })).toEqual([
      ['d', 'd1', 'pending'],
      ['c', 'c1', 'pending'],
    ])
    expect(merged(committed, overlay, { limit: 0 })).toEqual([])
  })

  it('pulls committed entries lazily', () => {
    let pulled = 0
    function* committed() {
      for (const key of ['a', 'b', 'c', 'd']) {
        pulled++
        yield { key, value: key.toUpperCase() }
      }
    }
    const first = mergeScan(committed(), [], { reverse: false, limit: Infinity }).next()
    expect(first.value).toEqual({ source: 'committed', key: 'a', value: 'A' })
    expect(pulled).toBe(2)
  })

  // Keys from a small alphabet with the orderings that matter: prefixes of each other,
  // U+E000 (above surrogates in UTF-16, below astral in code point order) and an astral one.
  const key = fc
    .array(fc.constantFrom('a', 'b', '/', '0', 'é', '\uE000', '\u{1F600}'), {
      minLength: 1,
      maxLength: 3,
    })
    .map((parts) => parts.join(''))
  const op = fc.record({ key, value: fc.option(fc.string({ maxLength: 3 }), { nil: undefined }) })
  const options = fc.record(
    {
      prefix: key.map((k) => k.slice(0, 1)),
      start: key,
      end: key,
      reverse: fc.boolean(),
      limit: fc.nat(6),
    },
    { requiredKeys: [] },
  )

  it('equals applying every batch in order (model check)', () => {
    fc.assert(
      fc.property(
        fc.array(op, { maxLength: 8 }),
        fc.array(fc.array(op, { minLength: 1, maxLength: 4 }), { maxLength: 6 }),
        fc.nat(6),
        fc.array(options, { minLength: 1, maxLength: 4 }),
        (initial, batches, settled, scans) => {
          // The model: every batch applied to a map, in order.
          const model = new Map<string, string>()
          const apply = (ops: readonly Op[]) => {
            for (const o of ops) {
              if (o.value === undefined) model.delete(o.key)
              else model.set(o.key, o.value)
            }
          }
          apply(initial)
          const committed = new Map(model)
          const overlay = new Overlay<string>()
          batches.forEach((ops, i) => {
            overlay.apply(i + 1, ops)
            apply(ops)
          })
          // Batches up to `settled` land in the committed map, as LMDB would commit them.
          const landed = Math.min(settled, batches.length)
          for (const ops of batches.slice(0, landed)) {
            for (const o of ops) {
              if (o.value === undefined) committed.delete(o.key)
              else committed.set(o.key, o.value)
            }
          }
          overlay.settle(landed)
          for (const k of model.keys()) {
            const pending = overlay.lookup(k)
            expect(pending === undefined ? committed.get(k) : pending.value).toBe(model.get(k))
          }
          for (const scan of scans) {
            const range = scanRange(scan)
            const keys = [...model.keys()].filter((k) => inScanRange(range, k)).sort(compareKeys)
            if (range.reverse) keys.reverse()
            const expected = keys.slice(0, range.limit).map((k) => [k, model.get(k)])
            expect(merged(committed, overlay, scan).map(([k, v]) => [k, v])).toEqual(expected)
          }
        },
      ),
      { numRuns: 500 },
    )
  })
})
