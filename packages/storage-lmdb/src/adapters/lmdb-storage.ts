/**
 * `StableStorage` on LMDB: the adapter between the framework's storage contract and the
 * `lmdb` package. It lives under `src/adapters/`, the one folder of this package the
 * determinism lint rule lets touch the file system, the process and real time; checksums, the
 * pending-write overlay and key ranges live in files outside it that may not.
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
 * - One process at a time: an advisory lock file (`consul-storage.lock`) names the owning
 *   process; a lock left by a dead process on this host is taken over.
 */
import { randomUUID } from 'node:crypto'
import {
  accessSync,
  closeSync,
  constants,
  fstatSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs'
import { hostname } from 'node:os'
import { dirname, join, resolve } from 'node:path'
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
import { META_CHECK_BYTES, metaPageProblem } from '../meta-check.js'
import { mergeScan, Overlay, type PendingEntry } from '../overlay.js'
import { encodeRecord, recordDamage, recordValue } from '../record.js'

/** The lock file `lmdbStorage` keeps in the directory while the store is open. */
export const LOCK_FILE = 'consul-storage.lock'
/** LMDB's data file inside the directory (named in corruption errors). */
export const DATA_FILE = 'data.mdb'

export interface LmdbStorageOptions {
  /**
   * Create the directory when it does not exist (only the last path component: its parent
   * must exist). Default `true`.
   */
  readonly create?: boolean
  /**
   * How long LMDB waits to gather more writes into one transaction, in milliseconds. `0`
   * (default) commits what one event-loop turn wrote at the next turn; a few milliseconds
   * trades latency for fewer, larger commits.
   */
  readonly commitDelayMs?: number
  /**
   * Initial size of LMDB's memory map in bytes. LMDB grows it as the data grows, so this is
   * only a hint. Default: LMDB's.
   */
  readonly mapSizeBytes?: number
}

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
  if (typeof dir !== 'string' || dir === '') {
    throw new StorageError('INVALID_VALUE', 'lmdbStorage(dir) takes the path of a directory')
  }
  checkOptions(options)
  const path = resolve(dir)
  prepareDirectory(path, options.create ?? true)
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
      commitDelay: options.commitDelayMs ?? 0,
      ...(options.mapSizeBytes === undefined ? {} : { mapSize: options.mapSizeBytes }),
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
    checkKey(key)
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

// ---- arguments --------------------------------------------------------------------------

// A lone UTF-16 surrogate has no UTF-8 encoding: two such keys would collide on disk.
const LONE_SURROGATE = /\p{Cs}/u

function checkKey(key: string): void {
  validateKey(key)
  if (LONE_SURROGATE.test(key)) {
    throw new StorageError(
      'INVALID_KEY',
      `storage key ${JSON.stringify(key)} contains an unpaired UTF-16 surrogate, which has no UTF-8 form; use well-formed strings`,
    )
  }
}

function checkOps(ops: readonly StorageOp[]): void {
  if (!Array.isArray(ops)) {
    throw new StorageError('INVALID_VALUE', 'batch() takes an array of ops')
  }
  // Everything first: a bad op must leave the store untouched (atomicity).
  for (const op of ops as unknown[]) {
    if (op === null || typeof op !== 'object') {
      throw new StorageError(
        'INVALID_VALUE',
        'a storage op must be { type: "put" | "del", key, value? }',
      )
    }
    const { type, key, value } = op as { type?: unknown; key?: unknown; value?: unknown }
    if (type !== 'put' && type !== 'del') {
      throw new StorageError(
        'INVALID_VALUE',
        'a storage op must be { type: "put" | "del", key, value? }',
      )
    }
    checkKey(key as string)
    if (type === 'put' && !(value instanceof Uint8Array)) {
      throw new StorageError(
        'INVALID_VALUE',
        `value for ${JSON.stringify(key)} must be a Uint8Array, got ${typeof value}`,
      )
    }
  }
}

function checkOptions(options: LmdbStorageOptions): void {
  if (options === null || typeof options !== 'object') {
    throw new StorageError('INVALID_VALUE', 'lmdbStorage options must be an object')
  }
  const { commitDelayMs, mapSizeBytes, create } = options
  if (create !== undefined && typeof create !== 'boolean') {
    throw new StorageError('INVALID_VALUE', 'lmdbStorage option create must be a boolean')
  }
  if (commitDelayMs !== undefined && !(Number.isFinite(commitDelayMs) && commitDelayMs >= 0)) {
    throw new StorageError(
      'INVALID_VALUE',
      `lmdbStorage option commitDelayMs must be a number ≥ 0, got ${String(commitDelayMs)}`,
    )
  }
  if (mapSizeBytes !== undefined && !(Number.isSafeInteger(mapSizeBytes) && mapSizeBytes > 0)) {
    throw new StorageError(
      'INVALID_VALUE',
      `lmdbStorage option mapSizeBytes must be a positive integer, got ${String(mapSizeBytes)}`,
    )
  }
}

// ---- the directory ------------------------------------------------------------------------

function ioError(path: string, problem: string, todo: string): StorageError {
  return new StorageError('IO', `cannot open LMDB storage at ${path}: ${problem}. ${todo}.`)
}

function errno(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code
}

function causeOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

function prepareDirectory(path: string, create: boolean): void {
  let exists = true
  try {
    if (!statSync(path).isDirectory()) {
      throw ioError(
        path,
        'it exists but is not a directory',
        'Pass the path of a directory (LMDB keeps data.mdb and lock.mdb inside it)',
      )
    }
  } catch (error) {
    if (StorageError.isInstance(error)) throw error
    if (errno(error) !== 'ENOENT' && errno(error) !== 'ENOTDIR') {
      throw ioError(
        path,
        `cannot inspect it (${causeOf(error)})`,
        'Check the path and its permissions',
      )
    }
    exists = false
  }
  if (!exists) {
    const parent = dirname(path)
    if (!create) {
      throw ioError(
        path,
        'the directory does not exist',
        'Create it, or open with { create: true }',
      )
    }
    let parentIsDirectory = false
    try {
      parentIsDirectory = statSync(parent).isDirectory()
    } catch {
      throw ioError(
        path,
        `its parent directory ${parent} does not exist`,
        'Create the parent first (lmdbStorage creates only the last path component, so a typo does not scatter directories)',
      )
    }
    if (!parentIsDirectory) {
      throw ioError(
        path,
        `its parent ${parent} is not a directory`,
        'Pass a path inside a directory',
      )
    }
    try {
      mkdirSync(path)
    } catch (error) {
      if (errno(error) !== 'EEXIST') {
        throw ioError(
          path,
          `cannot create the directory (${causeOf(error)})`,
          `Make ${parent} writable by this process, or create the directory yourself`,
        )
      }
    }
  }
  try {
    accessSync(path, constants.R_OK | constants.W_OK | constants.X_OK)
  } catch (error) {
    throw ioError(
      path,
      `the directory is not readable and writable by this process (${errno(error) ?? causeOf(error)})`,
      'Fix its owner or permissions, or pass a directory this process may write',
    )
  }
}

/**
 * Refuses a data file whose meta pages are damaged or foreign: the native module would crash
 * the process on it (see meta-check.ts).
 */
function checkDataFile(path: string): void {
  const file = join(path, DATA_FILE)
  let fd: number
  try {
    fd = openSync(file, 'r')
  } catch (error) {
    if (errno(error) === 'ENOENT') return // a new store
    throw ioError(path, `cannot read ${file} (${causeOf(error)})`, 'Fix its owner or permissions')
  }
  try {
    const size = fstatSync(fd).size
    const head = Buffer.alloc(Math.min(size, META_CHECK_BYTES))
    readSync(fd, head, 0, head.length, 0)
    const problem = metaPageProblem(head, size)
    if (problem !== undefined) {
      throw ioError(
        path,
        `${file} is damaged or is not an LMDB data file: ${problem}`,
        'Move the directory aside and rebuild this replica from its peers or a backup',
      )
    }
  } finally {
    closeSync(fd)
  }
}

// ---- the lock file --------------------------------------------------------------------------

/**
 * LMDB itself lets several processes share an environment. Consul does not: a store is one
 * host's stable storage, and two processes appending to one log would corrupt the protocol's
 * state. The lock file names its owner ({ pid, host }); it is created atomically (written
 * aside, then hard-linked into place, so it is never seen half-written). A lock whose owner is
 * a dead process on this host is taken over; any other lock is refused.
 */
interface LockFile {
  release(): void
}

interface LockOwner {
  readonly pid: number
  readonly host: string
  readonly token: string
  readonly since: string
}

function readOwner(file: string): LockOwner | undefined {
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as Partial<LockOwner>
    if (typeof parsed.pid === 'number' && typeof parsed.host === 'string') {
      return {
        pid: parsed.pid,
        host: parsed.host,
        token: String(parsed.token),
        since: String(parsed.since),
      }
    }
    return undefined
  } catch (error) {
    if (errno(error) === 'ENOENT') throw error
    return undefined
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: it exists but belongs to someone else.
    return errno(error) === 'EPERM'
  }
}

function lockedError(path: string, file: string, owner: LockOwner | undefined): StorageError {
  const who =
    owner === undefined
      ? 'a lock file that cannot be read'
      : owner.pid === process.pid && owner.host === hostname()
        ? `this process (pid ${owner.pid}, since ${owner.since})`
        : `process ${owner.pid} on host ${owner.host} (since ${owner.since})`
  return ioError(
    path,
    `the store is locked by ${who}`,
    owner?.pid === process.pid
      ? 'Close the other LmdbStorage on this directory first'
      : `Stop that process, or if you are sure no process uses the store, delete ${file}`,
  )
}

function acquireLock(path: string): LockFile {
  const file = join(path, LOCK_FILE)
  const me: LockOwner = {
    pid: process.pid,
    host: hostname(),
    token: randomUUID(),
    since: new Date().toISOString(),
  }
  const draft = `${file}.${me.token}.tmp`
  try {
    writeFileSync(draft, `${JSON.stringify(me)}\n`, { flag: 'wx' })
  } catch (error) {
    throw ioError(
      path,
      `cannot write in the directory (${causeOf(error)})`,
      'Fix its owner or permissions, or pass a directory this process may write',
    )
  }
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        linkSync(draft, file)
        return {
          release() {
            try {
              if (readOwner(file)?.token === me.token) unlinkSync(file)
            } catch {
              // Already gone: nothing to release.
            }
          },
        }
      } catch (error) {
        if (errno(error) !== 'EEXIST') {
          throw ioError(
            path,
            `cannot create the lock file ${file} (${causeOf(error)})`,
            'Check the directory',
          )
        }
      }
      let owner: LockOwner | undefined
      try {
        owner = readOwner(file)
      } catch {
        continue // released meanwhile: try again
      }
      if (owner === undefined || owner.host !== hostname() || processAlive(owner.pid)) {
        throw lockedError(path, file, owner)
      }
      // A dead owner's lock: move that very file aside (rename is atomic, so of two processes
      // taking over only one moves it), check it is the one we judged stale, and drop it.
      const aside = `${file}.${me.token}.stale`
      try {
        renameSync(file, aside)
      } catch {
        continue
      }
      const moved = readOwnerOrUndefined(aside)
      if (moved?.token !== owner.token) {
        // We moved a fresh lock someone took meanwhile: put it back and give way.
        try {
          linkSync(aside, file)
        } catch {}
        unlinkSync(aside)
        throw lockedError(path, file, moved)
      }
      unlinkSync(aside)
    }
    throw lockedError(path, file, readOwnerOrUndefined(file))
  } finally {
    try {
      unlinkSync(draft)
    } catch {}
  }
}

function readOwnerOrUndefined(file: string): LockOwner | undefined {
  try {
    return readOwner(file)
  } catch {
    return undefined
  }
}
