/**
 * Read-your-writes before the commit lands. A batch is handed to LMDB at once but becomes
 * visible to LMDB readers only when its transaction commits (a later event-loop turn), so the
 * adapter also records every pending batch here; `get` and `scan` consult the overlay first
 * and fall back to the committed data.
 *
 * Invariants:
 * - For every key written by a batch that has not settled, the overlay holds the newest
 *   pending op on that key (a value, or a tombstone for a delete) with its batch number.
 * - `settle(n)` runs once LMDB has committed every batch up to `n` (commits land in batch
 *   order), and removes exactly the entries whose newest op is from a batch ≤ n: what remains
 *   is newer than anything LMDB shows.
 * - So (overlay over committed data) always equals "every batch applied in order", which is
 *   what a reader must see.
 */
import { compareKeys } from '@consul/xkernel'
import { inScanRange, lowestKey, type ScanRange } from './key-range.js'

/** The newest pending op on a key: a value, or `undefined` for a delete. */
export interface PendingEntry<V> {
  readonly key: string
  readonly value: V | undefined
}

interface Slot<V> {
  readonly batch: number
  readonly value: V | undefined
}

interface PendingBatch {
  readonly batch: number
  readonly keys: readonly string[]
}

export class Overlay<V> {
  private readonly slots = new Map<string, Slot<V>>()
  /** The keys of `slots` in code point order. */
  private sorted: string[] = []
  /** Unsettled batches, oldest first, from `head` on. */
  private batches: PendingBatch[] = []
  private head = 0

  /** Number of batches written but not yet settled. */
  get pendingBatches(): number {
    return this.batches.length - this.head
  }

  /** Number of keys with a pending op. */
  get size(): number {
    return this.slots.size
  }

  /** Records batch number `batch` (increasing from call to call); a later op on a key wins. */
  apply(batch: number, ops: readonly PendingEntry<V>[]): void {
    const keys: string[] = []
    for (const op of ops) {
      if (!this.slots.has(op.key)) this.insertKey(op.key)
      this.slots.set(op.key, { batch, value: op.value })
      keys.push(op.key)
    }
    this.batches.push({ batch, keys })
  }

  /** The newest pending op on `key`, or `undefined` when the committed data is current. */
  lookup(key: string): PendingEntry<V> | undefined {
    const slot = this.slots.get(key)
    return slot === undefined ? undefined : { key, value: slot.value }
  }

  /** Every batch numbered ≤ `batch` is committed: forget the ops it made current. */
  settle(batch: number): void {
    const last = this.batches[this.batches.length - 1]
    if (last !== undefined && last.batch <= batch) {
      // The usual case with group commit: everything pending landed in one transaction.
      this.clear()
      return
    }
    let removed = false
    while (this.head < this.batches.length && this.batches[this.head]!.batch <= batch) {
      for (const key of this.batches[this.head]!.keys) {
        const slot = this.slots.get(key)
        if (slot !== undefined && slot.batch <= batch) {
          this.slots.delete(key)
          removed = true
        }
      }
      this.head++
    }
    if (removed) this.sorted = this.sorted.filter((key) => this.slots.has(key))
    if (this.head > 1024 && this.head * 2 > this.batches.length) {
      this.batches = this.batches.slice(this.head)
      this.head = 0
    }
  }

  /** Forgets everything (all settled, or the process is gone). */
  clear(): void {
    this.slots.clear()
    this.sorted = []
    this.batches = []
    this.head = 0
  }

  /**
   * The pending ops on keys in `range`, in scan order (tombstones included, so they can hide
   * committed keys). A copy: later writes do not change it.
   */
  entries(range: ScanRange): PendingEntry<V>[] {
    const keys = this.sorted
    const lowest = lowestKey(range)
    const out: PendingEntry<V>[] = []
    for (let i = lowest === undefined ? 0 : this.findIndex(lowest); i < keys.length; i++) {
      const key = keys[i]!
      if (!inScanRange(range, key)) {
        // Keys with the prefix are contiguous and we start at or above `start`: a key out of
        // range here is past the end of the range.
        break
      }
      out.push({ key, value: this.slots.get(key)!.value })
    }
    if (range.reverse) out.reverse()
    return out
  }

  private findIndex(key: string): number {
    const keys = this.sorted
    let lo = 0
    let hi = keys.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (compareKeys(keys[mid]!, key) < 0) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  private insertKey(key: string): void {
    const keys = this.sorted
    // Logs append in key order: make that the fast path.
    if (keys.length === 0 || compareKeys(keys[keys.length - 1]!, key) < 0) {
      keys.push(key)
      return
    }
    keys.splice(this.findIndex(key), 0, key)
  }
}

/** One entry of a merged scan, saying where it came from. */
export type MergedEntry<C, V> =
  | { readonly source: 'committed'; readonly key: string; readonly value: C }
  | { readonly source: 'pending'; readonly key: string; readonly value: V }

/**
 * Merges committed entries with pending ones, both already in scan order and in range: a
 * pending op on a key replaces the committed entry (a tombstone removes it), and at most
 * `range.limit` entries come out. Pulls from `committed` lazily.
 */
export function* mergeScan<C, V>(
  committed: Iterator<{ readonly key: string; readonly value: C }>,
  pending: readonly PendingEntry<V>[],
  range: Pick<ScanRange, 'reverse' | 'limit'>,
): Generator<MergedEntry<C, V>, void, undefined> {
  const direction = range.reverse ? -1 : 1
  let yielded = 0
  let p = 0
  let c = committed.next()
  while (true) {
    if (yielded >= range.limit) return
    const next = pending[p]
    if (c.done === true) {
      if (next === undefined) return
      p++
      if (next.value === undefined) continue
      yielded++
      yield { source: 'pending', key: next.key, value: next.value }
      continue
    }
    const order = next === undefined ? -1 : compareKeys(c.value.key, next.key) * direction
    if (order < 0) {
      const { key, value } = c.value
      c = committed.next()
      yielded++
      yield { source: 'committed', key, value }
      continue
    }
    // The pending op is next; on the same key it replaces the committed entry.
    if (order === 0) c = committed.next()
    p++
    if (next!.value === undefined) continue
    yielded++
    yield { source: 'pending', key: next!.key, value: next!.value }
  }
}
