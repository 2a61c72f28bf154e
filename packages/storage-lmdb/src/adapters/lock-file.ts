/**
 * The single-writer lock. LMDB itself lets several processes share an environment. Consul
 * does not: a store is one host's stable storage, and two processes appending to one log
 * would corrupt the protocol's state. The lock file names its owner ({ pid, host }); it is
 * created atomically (written aside, then hard-linked into place, so it is never seen
 * half-written). A lock whose owner is a dead process on this host is taken over; any other
 * lock is refused.
 *
 * Invariant: at most one `LockFile` holds a directory at a time, and `release()` removes the
 * lock file only while it still carries this holder's token (never a successor's lock).
 */
import { randomUUID } from 'node:crypto'
import { linkSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import type { StorageError } from '@consul/xkernel'
import { causeOf, errno, ioError } from './io-error.js'

/** The lock file `lmdbStorage` keeps in the directory while the store is open. */
export const LOCK_FILE = 'consul-storage.lock'

/** A held lock. */
export interface LockFile {
  /** Removes the lock file if it is still ours; never throws, may be called again. */
  release(): void
}

/** What the lock file holds (JSON, one line). */
export interface LockOwner {
  readonly pid: number
  readonly host: string
  /** Tells this holder's lock from a later one of the same process. */
  readonly token: string
  /** When it was taken (ISO 8601), for the error message of whoever is refused. */
  readonly since: string
}

/** The owner a lock file names; `undefined` if it names none; throws ENOENT if it is gone. */
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

/**
 * Takes the lock of directory `path` (absolute, existing), or throws `StorageError('IO')`
 * naming the holder: a live process on this host (this one included), a process on another
 * host, or a lock file that cannot be read. A lock left by a dead process on this host is
 * taken over.
 */
export function acquireLock(path: string): LockFile {
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
