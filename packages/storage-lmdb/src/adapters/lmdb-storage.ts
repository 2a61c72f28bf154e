/**
 * `StableStorage` on LMDB: the adapter between the framework's storage contract and the
 * `lmdb` package. It lives under `src/adapters/`, the one folder of this package the
 * determinism lint rule lets touch the file system, the process and real time; checksums, the
 * pending-write overlay, key ranges, option and op checks live in files outside it that may
 * not. Opening wires `open-options.ts`, `directory.ts`, `lock-file.ts` and `data-file.ts`.
 *
 * How the contract is kept:
 * - Atomic batch: each `batch()` goes to LMDB as one `db.batch()` block, which LMDB commits
 *   inside a single transaction; every batch made in one event-loop turn shares that
 *   transaction (group commit), which stays atomic per batch and in order.
 * - Read-your-writes: LMDB readers see a batch only once its transaction commits, so batches
 *   also go into an in-memory overlay until then (`overlay.ts`).
 * - `sync()`: waits for the commit of the last batch written before the call and for LMDB to
 *   report that commit flushed (fsync) to disk.
 * - Keys are stored as their UTF-8 bytes; LMDB's default comparator is memcmp, so the stored
 *   order is UTF-8 byte order = Unicode code point order = `compareKeys`.
 * - Values are stored as records with a CRC32C (`record.ts`); a record that fails it throws
 *   `StorageCorruptedError` naming the key and data file.
 * - One process at a time: an advisory lock file names the owner (`lock-file.ts`).
 */
import { join, resolve } from 'node:path'
import {
  type ScanEntry,
  type ScanOptions,
  type StableStorage,
  StorageCorruptedError,
  StorageError,
  type StorageOp,
  validateKey,
} from '@consul/xkernel'
import { open, type RangeOptions, type RootDatabase } from 'lmdb'
import { byteBounds, inScanRange, type ScanRange, scanRange } from '../key-range.js'
import { checkDirArgument, type LmdbStorageOptions, resolveOpenOptions } from '../open-options.js'
import { mergeScan, Overlay, type PendingEntry } from '../overlay.js'
import { encodeRecord, recordDamage, recordValue } from '../record.js'
import { checkOps } from '../storage-ops.js'
import { checkDataFile, DATA_FILE } from './data-file.js'
import { prepareDirectory } from './directory.js'
import { causeOf, ioError } from './io-error.js'
import { acquireLock, type LockFile } from './lock-file.js'

/** Counters (`stats()`), for dashboards and tests. */
export interface LmdbStorageStats {
  /** Non-empty batches written (put/delete count as one-op batches). */
  readonly batches: number
  /** Records written and deleted. */
  readonly puts: number
  readonly deletes: number
  /** LMDB transactions that landed with our batches (batches / commits = group-commit size). */
  readonly commits: number
  readonly syncs: number
  /** Batches written whose transaction has not committed yet (held in the overlay). */
  readonly pendingBatches: number
  /** Reads that found a record failing its checksum. */
  readonly corruptedReads: number
}

/** A `StableStorage` kept in an LMDB environment on disk. */
export interface LmdbStorage extends StableStorage {
  /** The directory holding `data.mdb`, `lock.mdb` and the lock file (absolute). */
  readonly path: string
  stats(): LmdbStorageStats
}

/**
 * Opens (creating if needed) the store in directory `dir`.
 *
 * Throws `StorageError('IO')` when the directory cannot be used (its parent is missing, it
 * is a file, it is not writable, another live process has it open, LMDB cannot open the data
 * file), with a message naming the path and what to do.
 */
export async function lmdbStorage(
  dir: string,
  options: LmdbStorageOptions = {},
): Promise<LmdbStorage> {
  checkDirArgument(dir)
  const { create, commitDelayMs, mapSizeBytes } = resolveOpenOptions(options)
  const path = resolve(dir)
  prepareDirectory(path, create)
  const lock = acquireLock(path)
  try {
    checkDataFile(path)
  } catch (error) {
    lock.release()
    throw error
  }
  let db: RootDatabase<Buffer, Buffer>
  try {
    db = open<Buffer, Buffer>({
      path,
      // A directory even when its name has a dot in it (lmdb's default guesses otherwise).
      noSubdir: false,
      keyEncoding: 'binary',
      encoding: 'binary',
      // Commit promises resolve when a transaction is visible; `.flushed` when it is on disk.
      separateFlushed: true,
      commitDelay: commitDelayMs,
      ...(mapSizeBytes === undefined ? {} : { mapSize: mapSizeBytes }),
    })
  } catch (error) {
    lock.release()
    throw ioError(
      path,
      `LMDB could not open ${join(path, DATA_FILE)} (${causeOf(error)})`,
      'If the file is damaged, move the directory aside and restore the data from a replica or backup',
    )
  }
  return new LmdbStore(path, db, lock)
}

type CommitPromise = Promise<boolean> & { readonly flushed?: Promise<unknown> }

type State = 'open' | 'closed' | 'failed'

interface CommittedRecord {
  readonly keyBytes: Buffer
  readonly record: Buffer
}

/**
 * The store. Exported for this package's tests (`simulateCrash`); the public surface is the
 * `LmdbStorage` interface.
 */
export class LmdbStore implements LmdbStorage {
  readonly path: string
  private readonly dataFile: string
  private readonly overlay = new Overlay<Uint8Array>()
  /** LMDB cursors of scans in progress, released before the environment closes. */
  private readonly cursors = new Set<Iterator<unknown>>()
  private state: State = 'open'
  private failure: StorageError | undefined
  private closing: Promise<void> | undefined
  /** Batch numbers, in the order batches are written. */
  private batchCount = 0
  /** Bumped by a simulated crash: callbacks of the dead incarnation do nothing. */
  private epoch = 0
  /** The commit promise of the newest transaction we wrote to, and its newest batch. */
  private lastCommit: CommitPromise | undefined
  private lastCommitCovers = { batch: 0 }
  private readonly counters = {
    batches: 0,
    puts: 0,
    deletes: 0,
    commits: 0,
    syncs: 0,
    corruptedReads: 0,
  }

  constructor(
    path: string,
    private readonly db: RootDatabase<Buffer, Buffer>,
    private readonly lock: LockFile,
  ) {
    this.path = path
    this.dataFile = join(path, DATA_FILE)
    // Counted per LMDB transaction (lmdb may hand one transaction's writes several promises);
    // lmdb reports a placeholder with txnId 0 before the first real one.
    db.on('aftercommit', (event: { txnId?: number } | undefined) => {
      if (this.state === 'open' && (event?.txnId ?? 0) > 0) this.counters.commits++
    })
  }

  stats(): LmdbStorageStats {
    return { ...this.counters, pendingBatches: this.overlay.pendingBatches }
  }

  private unusable(): StorageError {
    return this.state === 'failed' && this.failure !== undefined
      ? this.failure
      : new StorageError('CLOSED', `LMDB storage at ${this.path} is closed`)
  }

  private checkUsable(): void {
    if (this.state !== 'open') throw this.unusable()
  }

  get(key: string): Uint8Array | undefined {
    this.checkUsable()
    validateKey(key)
    const pending = this.overlay.lookup(key)
    if (pending !== undefined) {
      return pending.value === undefined ? undefined : recordValue(pending.value)
    }
    const keyBytes = Buffer.from(key, 'utf8')
    // A view into lmdb's shared read buffer, valid until the next read: verify, then copy.
    const record = this.db.getBinaryFast(keyBytes)
    return record === undefined ? undefined : this.verified(key, keyBytes, record)
  }

  private verified(key: string, keyBytes: Uint8Array, record: Uint8Array): Uint8Array {
    const damage = recordDamage(keyBytes, record)
    if (damage !== undefined) {
      this.counters.corruptedReads++
      throw new StorageCorruptedError(key, this.dataFile, damage)
    }
    return recordValue(record)
  }

  put(key: string, value: Uint8Array): void {
    this.batch([{ type: 'put', key, value }])
  }

  delete(key: string): void {
    this.batch([{ type: 'del', key }])
  }

  batch(ops: readonly StorageOp[]): void {
    this.checkUsable()
    checkOps(ops)
    if (ops.length === 0) return
    const batch = ++this.batchCount
    const pending: PendingEntry<Uint8Array>[] = []
    const writes: { keyBytes: Buffer; record: Uint8Array | undefined }[] = []
    for (const op of ops) {
      const keyBytes = Buffer.from(op.key, 'utf8')
      const record = op.type === 'put' ? encodeRecord(keyBytes, op.value) : undefined
      pending.push({ key: op.key, value: record })
      writes.push({ keyBytes, record })
      if (record === undefined) this.counters.deletes++
      else this.counters.puts++
    }
    this.counters.batches++
    this.overlay.apply(batch, pending)
    const db = this.db
    const write = (w: { keyBytes: Buffer; record: Uint8Array | undefined }) =>
      w.record === undefined ? db.remove(w.keyBytes) : db.put(w.keyBytes, w.record as Buffer)
    let commit: CommitPromise
    try {
      commit =
        writes.length === 1
          ? write(writes[0]!)
          : db.batch(() => {
              for (const w of writes) void write(w)
            })
    } catch (error) {
      // The overlay now shows a batch LMDB does not have: stop serving reads (fail-stop).
      throw this.fail(error)
    }
    this.track(commit, batch)
  }

  /** Settles the overlay when the transaction holding `batch` commits. */
  private track(commit: CommitPromise, batch: number): void {
    if (commit === this.lastCommit) {
      // lmdb hands the writes of one transaction the same promise (or a few, for big ones).
      this.lastCommitCovers.batch = batch
      return
    }
    const covers = { batch }
    this.lastCommit = commit
    this.lastCommitCovers = covers
    const epoch = this.epoch
    commit.then(
      () => {
        if (epoch !== this.epoch || this.state !== 'open') return
        // lmdb renews its read snapshot after a commit; do it here too so nothing reads an
        // older snapshot once the overlay forgets these batches.
        this.db.resetReadTxn()
        this.overlay.settle(covers.batch)
      },
      (error: unknown) => {
        if (epoch === this.epoch && this.state === 'open') this.fail(error)
      },
    )
  }

  private fail(error: unknown): StorageError {
    if (this.failure === undefined) {
      this.failure = new StorageError(
        'IO',
        `LMDB storage at ${this.path} failed to commit (${causeOf(error)}); batches not covered by a completed sync() may be lost. Close the store and open it again.`,
      )
      this.state = 'failed'
    }
    return this.failure
  }

  scan(options?: ScanOptions): Iterable<ScanEntry> {
    this.checkUsable()
    return this.iterate(scanRange(options))
  }

  private *iterate(range: ScanRange): Generator<ScanEntry, void, undefined> {
    this.checkUsable()
    // Both snapshots are taken in this one synchronous step: the overlay's pending ops here,
    // LMDB's read transaction at the first pull below (inside mergeScan's first step).
    const pending = this.overlay.entries(range)
    const committed = this.committedEntries(range)
    try {
      for (const entry of mergeScan(committed, pending, range)) {
        yield entry.source === 'pending'
          ? { key: entry.key, value: recordValue(entry.value) }
          : {
              key: entry.key,
              value: this.verified(entry.key, entry.value.keyBytes, entry.value.record),
            }
      }
    } finally {
      committed.return()
    }
  }

  private *committedEntries(
    range: ScanRange,
  ): Generator<{ key: string; value: CommittedRecord }, void, undefined> {
    const { low, high } = byteBounds(range)
    const options: RangeOptions = range.reverse
      ? {
          reverse: true,
          ...(high === undefined ? {} : { start: high, exclusiveStart: true }),
          ...(low === undefined ? {} : { end: low, inclusiveEnd: true }),
        }
      : {
          ...(low === undefined ? {} : { start: low }),
          ...(high === undefined ? {} : { end: high }),
        }
    const cursor = this.db.getRange(options)[Symbol.iterator]()
    this.cursors.add(cursor)
    try {
      while (true) {
        // Checked before every pull: a scan left open across close() must not touch the
        // closed environment (shutdown has already released this cursor).
        this.checkUsable()
        const next = cursor.next()
        if (next.done === true) return
        const { key: keyBytes, value: record } = next.value
        const key = keyBytes.toString('utf8')
        if (!inScanRange(range, key)) continue
        yield { key, value: { keyBytes, record } }
      }
    } finally {
      if (this.cursors.delete(cursor)) cursor.return?.()
    }
  }

  sync(): Promise<void> {
    if (this.state !== 'open') return Promise.reject(this.unusable())
    this.counters.syncs++
    const commit = this.lastCommit
    if (commit === undefined) return Promise.resolve()
    const durable = Promise.all([commit, commit.flushed ?? commit])
    const epoch = this.epoch
    return new Promise<void>((resolve, reject) => {
      durable.then(
        () => {
          // After a (simulated) crash the caller is gone: never settle, like a real crash.
          if (epoch === this.epoch) resolve()
        },
        (error: unknown) => {
          if (epoch === this.epoch) reject(this.fail(error))
        },
      )
    })
  }

  close(): Promise<void> {
    if (this.closing === undefined) {
      const failure = this.failure
      this.state = 'closed'
      this.closing = this.shutdown({ flush: true, failure })
    }
    return this.closing
  }

  /**
   * Test hook: behaves as if the process died now. Syncs in flight never settle, nothing more
   * is flushed on our behalf, the lock is released as a dead owner's would be taken over, and
   * the files are left as a restarted process finds them. (LMDB may still complete the commit
   * it is writing: a crash loses only what no completed sync covered, not necessarily all of
   * it.)
   */
  simulateCrash(): Promise<void> {
    this.epoch++
    this.state = 'closed'
    this.closing ??= this.shutdown({ flush: false, failure: undefined })
    return this.closing
  }

  private async shutdown(how: { flush: boolean; failure: StorageError | undefined }) {
    let error = how.failure
    const commit = this.lastCommit
    if (how.flush && commit !== undefined && error === undefined) {
      try {
        await Promise.all([commit, commit.flushed ?? commit])
      } catch (cause) {
        error = this.fail(cause)
        this.state = 'closed'
      }
    }
    // An LMDB cursor must not outlive its environment.
    for (const cursor of this.cursors) cursor.return?.()
    this.cursors.clear()
    try {
      await this.db.close()
    } catch (cause) {
      error ??= new StorageError('IO', `closing LMDB storage at ${this.path}: ${causeOf(cause)}`)
    } finally {
      this.overlay.clear()
      this.lock.release()
    }
    if (error !== undefined) throw error
  }
}
