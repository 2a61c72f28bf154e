/**
 * In-memory stable storage with a crash mode. Every batch is applied at once (reads see it)
 * and remembered in an undo log until a `sync()` covers it; `crash()` rolls back whatever no
 * completed sync covered, which is exactly what a process crash does to unsynced writes.
 *
 * It is the storage of tests and of the simulator's disks (which pass `scheduleSync` to make
 * syncs take virtual time, and `crash({ corrupt })` to leave a torn or bit-flipped record
 * behind). It is not durable across real process restarts.
 */
import { StorageCorruptedError, StorageError } from './errors.js'
import type { Random } from './random.js'
import {
  compareKeys,
  type ScanEntry,
  type ScanOptions,
  type StableStorage,
  type StorageOp,
  validateKey,
  validateOps,
} from './storage.js'

interface Entry {
  readonly value: Uint8Array
  /** Set when a simulated fault damaged the record; reads then throw. */
  readonly damage?: string
}

interface Undo {
  readonly batch: number
  readonly key: string
  readonly previous: Entry | undefined
}

export interface MemoryStorageOptions {
  /** Named in error messages (`StorageCorruptedError.location`). */
  readonly name?: string
  /**
   * How a `sync()` completes: called with the completion; call it when the data would be
   * durable. Default: on the next microtask.
   */
  readonly scheduleSync?: (complete: () => void) => void
}

export interface CrashOptions {
  /**
   * Damage one record of the last unsynced batch instead of rolling it back cleanly, with
   * this probability, drawing from `random`: a torn (truncated) or bit-flipped write that
   * the record checksum of a real store would catch. Reads of it throw
   * `StorageCorruptedError`.
   */
  readonly corrupt?: { readonly probability: number; readonly random: Random }
}

export interface StorageCounters {
  batches: number
  syncs: number
  crashes: number
  rolledBack: number
  corrupted: number
}

export class MemoryStorage implements StableStorage {
  private readonly entries = new Map<string, Entry>()
  private sortedKeys: string[] = []
  private staleKeys = 0
  private undo: Undo[] = []
  private batchCount = 0
  private epoch = 0
  private closed = false
  readonly counters: StorageCounters = {
    batches: 0,
    syncs: 0,
    crashes: 0,
    rolledBack: 0,
    corrupted: 0,
  }
  private readonly location: string
  private readonly scheduleSync: (complete: () => void) => void

  constructor(options: MemoryStorageOptions = {}) {
    this.location = options.name ?? 'memory storage'
    this.scheduleSync =
      options.scheduleSync ?? ((complete) => void Promise.resolve().then(complete))
  }

  private checkOpen(): void {
    if (this.closed) throw new StorageError('CLOSED', `${this.location} is closed`)
  }

  private read(key: string, entry: Entry): Uint8Array {
    if (entry.damage !== undefined) {
      throw new StorageCorruptedError(key, this.location, entry.damage)
    }
    return entry.value.slice()
  }

  get(key: string): Uint8Array | undefined {
    this.checkOpen()
    validateKey(key)
    const entry = this.entries.get(key)
    return entry === undefined ? undefined : this.read(key, entry)
  }

  put(key: string, value: Uint8Array): void {
    this.batch([{ type: 'put', key, value }])
  }

  delete(key: string): void {
    this.batch([{ type: 'del', key }])
  }

  batch(ops: readonly StorageOp[]): void {
    this.checkOpen()
    // Validate everything first: a bad op must leave the store untouched (atomicity).
    validateOps(ops)
    const batch = ++this.batchCount
    this.counters.batches++
    for (const op of ops) {
      const previous = this.entries.get(op.key)
      this.undo.push({ batch, key: op.key, previous })
      if (op.type === 'put') {
        if (previous === undefined) this.insertKey(op.key)
        this.entries.set(op.key, { value: op.value.slice() })
      } else if (previous !== undefined) {
        this.entries.delete(op.key)
        this.removeKey(op.key)
      }
    }
  }

  private findIndex(key: string): number {
    const keys = this.sortedKeys
    let lo = 0
    let hi = keys.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (compareKeys(keys[mid]!, key) < 0) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  /** Called for a key not in `entries`; it may still sit in `sortedKeys` as a stale key. */
  private insertKey(key: string): void {
    const keys = this.sortedKeys
    // Logs append in key order: make that the fast path.
    if (keys.length === 0 || compareKeys(keys[keys.length - 1]!, key) < 0) {
      keys.push(key)
      return
    }
    const index = this.findIndex(key)
    if (keys[index] === key) this.staleKeys--
    else keys.splice(index, 0, key)
  }

  /**
   * Deletes are lazy: the key stays in `sortedKeys` (scans skip keys without an entry) until
   * stale keys are half the array, then one pass compacts it. Pruning a log from its front
   * stays linear instead of quadratic.
   */
  private removeKey(_key: string): void {
    this.staleKeys++
    if (this.staleKeys > 1024 && this.staleKeys * 2 > this.sortedKeys.length) {
      this.sortedKeys = this.sortedKeys.filter((k) => this.entries.has(k))
      this.staleKeys = 0
    }
  }

  *scan(options: ScanOptions = {}): Iterable<ScanEntry> {
    this.checkOpen()
    const { prefix = '', start, end, reverse = false, limit = Number.POSITIVE_INFINITY } = options
    const low = start !== undefined && compareKeys(start, prefix) > 0 ? start : prefix
    const keys = this.sortedKeys
    let from = low === '' ? 0 : this.findIndex(low)
    let to = end === undefined ? keys.length : this.findIndex(end)
    if (prefix !== '') {
      // Narrow `to` to the end of the prefix range.
      let i = from
      while (i < to && keys[i]!.startsWith(prefix)) i++
      to = i
    }
    if (from > to) from = to
    // Snapshot the range so writes during iteration do not shift it.
    const range = keys.slice(from, to)
    if (reverse) range.reverse()
    let yielded = 0
    for (const key of range) {
      if (yielded >= limit) return
      const entry = this.entries.get(key)
      if (entry === undefined) continue
      yielded++
      yield { key, value: this.read(key, entry) }
    }
  }

  sync(): Promise<void> {
    this.checkOpen()
    this.counters.syncs++
    const covered = this.batchCount
    const epoch = this.epoch
    return new Promise<void>((resolve) => {
      this.scheduleSync(() => {
        // A crash in between means the process that asked is gone: never settle.
        if (epoch !== this.epoch) return
        let n = 0
        while (n < this.undo.length && this.undo[n]!.batch <= covered) n++
        if (n > 0) this.undo = this.undo.slice(n)
        resolve()
      })
    })
  }

  /** Unsynced batches (rolled back by a crash). */
  get unsyncedBatches(): number {
    const first = this.undo[0]
    return first === undefined ? 0 : this.batchCount - first.batch + 1
  }

  /**
   * Simulates a process crash: every batch no completed `sync()` covered is undone, syncs in
   * flight never settle, and the store stays usable as the disk the restarted process finds.
   */
  crash(options: CrashOptions = {}): void {
    this.counters.crashes++
    this.epoch++
    const undo = this.undo
    this.undo = []
    const last = undo[undo.length - 1]
    let damaged: { key: string; entry: Entry } | undefined
    if (last !== undefined && options.corrupt !== undefined) {
      const { probability, random } = options.corrupt
      if (random.next() < probability) {
        const candidates = undo.filter((u) => u.batch === last.batch)
        const victim = candidates[random.int(candidates.length)]!
        const written = this.entries.get(victim.key)
        if (written !== undefined) {
          const torn = random.next() < 0.5
          const value = written.value.slice(
            0,
            torn ? random.int(written.value.length + 1) : undefined,
          )
          if (!torn && value.length > 0) value[random.int(value.length)]! ^= 1 << random.int(8)
          damaged = {
            key: victim.key,
            entry: {
              value,
              damage: torn ? 'torn write (truncated record)' : 'checksum mismatch (bit flip)',
            },
          }
        }
      }
    }
    for (let i = undo.length - 1; i >= 0; i--) {
      const u = undo[i]!
      this.counters.rolledBack++
      const current = this.entries.has(u.key)
      if (u.previous === undefined) {
        if (current) {
          this.entries.delete(u.key)
          this.removeKey(u.key)
        }
      } else {
        if (!current) this.insertKey(u.key)
        this.entries.set(u.key, u.previous)
      }
    }
    if (damaged !== undefined) {
      this.counters.corrupted++
      if (!this.entries.has(damaged.key)) this.insertKey(damaged.key)
      this.entries.set(damaged.key, damaged.entry)
    }
  }

  /** Number of live keys. */
  get size(): number {
    return this.entries.size
  }

  async close(): Promise<void> {
    this.closed = true
  }

  /** Reopens after `close()` (the same contents), as a process reopening its store. */
  reopen(): this {
    this.closed = false
    return this
  }
}

/** A fresh in-memory storage. */
export function memoryStorage(options: MemoryStorageOptions = {}): MemoryStorage {
  return new MemoryStorage(options)
}
