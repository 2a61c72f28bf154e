import { spawn } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { acquireLock, LOCK_FILE, type LockFile } from '../src/adapters/lock-file.js'
import { exited, expectStorageError, removeTempDirs, tempDir } from './helpers.js'

const held: LockFile[] = []
function lock(dir: string): LockFile {
  const taken = acquireLock(dir)
  held.push(taken)
  return taken
}
afterEach(() => {
  for (const taken of held.splice(0)) taken.release()
  removeTempDirs()
})

const lockPath = (dir: string) => join(dir, LOCK_FILE)
const readLock = (dir: string) => JSON.parse(readFileSync(lockPath(dir), 'utf8'))
const writeLock = (dir: string, owner: object) =>
  writeFileSync(lockPath(dir), `${JSON.stringify(owner)}\n`)

/** The pid of a process that has run and exited (so no process has it, barring reuse). */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' })
  await exited(child)
  return child.pid!
}

describe('acquireLock', () => {
  it('writes a lock file naming this process, and leaves nothing else in the directory', () => {
    const dir = tempDir('lock')
    lock(dir)
    expect(readdirSync(dir)).toEqual([LOCK_FILE])
    const owner = readLock(dir)
    expect(owner).toMatchObject({ pid: process.pid, host: hostname() })
    expect(owner.token).toMatch(/^[0-9a-f-]{36}$/)
    expect(Number.isNaN(Date.parse(owner.since))).toBe(false)
  })

  it('refuses a second lock of the same directory in this process, leaving the first intact', async () => {
    const dir = tempDir('lock')
    lock(dir)
    const before = readFileSync(lockPath(dir), 'utf8')
    const error = await expectStorageError(
      () => lock(dir),
      'IO',
      /locked by this process \(pid \d+, since .*\)\. Close the other LmdbStorage on this directory first\.$/,
    )
    expect(error.message).toContain(`cannot open LMDB storage at ${dir}:`)
    expect(readFileSync(lockPath(dir), 'utf8')).toBe(before)
    expect(readdirSync(dir)).toEqual([LOCK_FILE])
  })

  it('release removes the lock, may be called again, and the directory can be locked anew', () => {
    const dir = tempDir('lock')
    const first = lock(dir)
    const token = readLock(dir).token
    first.release()
    expect(existsSync(lockPath(dir))).toBe(false)
    expect(() => first.release()).not.toThrow()
    lock(dir)
    expect(readLock(dir).token).not.toBe(token)
  })

  it('release leaves a lock file that is no longer its own', () => {
    const dir = tempDir('lock')
    const first = lock(dir)
    const successor = { ...readLock(dir), token: 'someone-else' }
    writeLock(dir, successor)
    first.release()
    expect(readLock(dir)).toEqual(successor)
  })

  it('takes over a stale lock left by a dead process on this host', async () => {
    const dir = tempDir('lock')
    const pid = await deadPid()
    writeLock(dir, { pid, host: hostname(), token: 'old', since: 'earlier' })
    lock(dir)
    const owner = readLock(dir)
    expect(owner.pid).toBe(process.pid)
    expect(owner.token).not.toBe('old')
    // The stale lock was moved aside and dropped, the draft removed.
    expect(readdirSync(dir)).toEqual([LOCK_FILE])
  })

  it('refuses a lock held by another live process on this host, naming it', async () => {
    const dir = tempDir('lock')
    // pid 1 is always running (and, unless we are root, belongs to someone else: EPERM).
    const owner = { pid: 1, host: hostname(), token: 't', since: 'boot' }
    writeLock(dir, owner)
    await expectStorageError(
      () => lock(dir),
      'IO',
      new RegExp(
        `locked by process 1 on host ${escapeRegExp(hostname())} \\(since boot\\)\\. Stop that process, or if you are sure no process uses the store, delete ${escapeRegExp(lockPath(dir))}\\.$`,
      ),
    )
    expect(readLock(dir)).toEqual(owner)
    expect(readdirSync(dir)).toEqual([LOCK_FILE])
  })

  it('refuses a lock from another host even when its pid is not running here', async () => {
    const dir = tempDir('lock')
    const owner = { pid: await deadPid(), host: `not-${hostname()}`, token: 't', since: 'then' }
    writeLock(dir, owner)
    await expectStorageError(() => lock(dir), 'IO', /locked by process \d+ on host not-/)
    expect(readLock(dir)).toEqual(owner)
  })

  it('refuses a lock file it cannot read, telling to delete it', async () => {
    const dir = tempDir('lock')
    for (const content of ['garbage', '{}', '{"pid":"12","host":"h"}', 'null']) {
      writeFileSync(lockPath(dir), content)
      await expectStorageError(
        () => lock(dir),
        'IO',
        /locked by a lock file that cannot be read\. Stop that process, or .* delete /,
      )
      expect(readFileSync(lockPath(dir), 'utf8')).toBe(content)
    }
  })

  it('refuses a directory it cannot write in', async () => {
    const missing = join(tempDir('lock'), 'gone')
    await expectStorageError(
      () => lock(missing),
      'IO',
      /: cannot write in the directory \(ENOENT.*\)\. Fix its owner or permissions/,
    )
  })
})

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}
