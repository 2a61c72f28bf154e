import { type ChildProcess, spawn } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { DATA_FILE, LOCK_FILE, lmdbStorage } from '../src/index.js'
import { exited, expectStorageError, lines, removeTempDirs, str, tempDir, text } from './helpers.js'

const fixture = fileURLToPath(new URL('./fixtures/store-process.ts', import.meta.url))
const packageDir = fileURLToPath(new URL('..', import.meta.url))
const children: ChildProcess[] = []

function runFixture(args: string[], user?: { uid: number; gid: number }): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', fixture, ...args], {
    cwd: packageDir,
    stdio: ['ignore', 'pipe', 'inherit'],
    ...(user ?? {}),
  })
  children.push(child)
  return child
}

afterEach(async () => {
  for (const child of children.splice(0)) {
    child.kill('SIGKILL')
    await exited(child)
  }
  removeTempDirs()
})

describe('opening a directory that cannot be used', () => {
  it('creates a missing directory whose parent exists', async () => {
    const dir = join(tempDir(), 'new')
    const s = await lmdbStorage(dir)
    await s.close()
    expect(existsSync(join(dir, DATA_FILE))).toBe(true)
  })

  it('refuses a path whose parent does not exist, creating nothing', async () => {
    const parent = join(tempDir(), 'missing-parent')
    const dir = join(parent, 'store')
    await expectStorageError(
      () => lmdbStorage(dir),
      'IO',
      new RegExp(
        `${escapeRegExp(dir)}.*parent directory ${escapeRegExp(parent)} does not exist.*Create the parent`,
      ),
    )
    expect(existsSync(parent)).toBe(false)
  })

  it('refuses a path that is a regular file', async () => {
    const file = join(tempDir(), 'a-file')
    writeFileSync(file, 'not a store')
    await expectStorageError(
      () => lmdbStorage(file),
      'IO',
      /a-file: it exists but is not a directory/,
    )
    expect(readFileSync(file, 'utf8')).toBe('not a store')
  })

  it('refuses a path whose parent is a regular file', async () => {
    const file = join(tempDir(), 'a-file')
    writeFileSync(file, '')
    await expectStorageError(() => lmdbStorage(join(file, 'store')), 'IO', /is not a directory/)
  })

  it('with { create: false } refuses a missing directory', async () => {
    const dir = join(tempDir(), 'absent')
    await expectStorageError(
      () => lmdbStorage(dir, { create: false }),
      'IO',
      /does not exist.*create: true/,
    )
    expect(existsSync(dir)).toBe(false)
  })

  it('refuses a directory this process may not write', async () => {
    // Root ignores permission bits, so as root (CI) the unwritable places are kernel file
    // systems: /proc (exists, nothing can be created in it) and /sys (read-only). As any
    // other user, a directory with mode 0555.
    let readOnly: string
    let insideReadOnly: string
    if (process.getuid?.() === 0) {
      readOnly = '/proc'
      insideReadOnly = '/sys/consul-storage-test'
    } else {
      const base = tempDir('perm')
      readOnly = join(base, 'read-only')
      mkdirSync(readOnly, { mode: 0o555 })
      chmodSync(readOnly, 0o555)
      insideReadOnly = join(readOnly, 'store')
    }
    const results: { ok?: true; code?: string; message?: string }[] = []
    for (const dir of [readOnly, insideReadOnly]) {
      try {
        await (await lmdbStorage(dir)).close()
        results.push({ ok: true })
      } catch (error) {
        results.push({ code: (error as { code: string }).code, message: (error as Error).message })
      }
    }
    expect(results).toHaveLength(2)
    expect(results[0]).toMatchObject({ code: 'IO' })
    expect(results[0]!.message).toMatch(
      new RegExp(
        `${escapeRegExp(readOnly)}: (the directory is not readable and writable|cannot write in the directory).*permissions`,
      ),
    )
    expect(results[1]).toMatchObject({ code: 'IO' })
    expect(results[1]!.message).toMatch(
      new RegExp(`${escapeRegExp(insideReadOnly)}: cannot create the directory.*writable`),
    )
  })

  it('refuses a data file that is not LMDB or whose meta pages are damaged, instead of crashing', async () => {
    // The lmdb native module dies with SIGSEGV on such files; the adapter checks first.
    const page = (f: Buffer) => f.readUInt32LE(48) // the page size meta page 0 records
    const cases: [string, (file: Buffer) => Buffer, RegExp][] = [
      [
        'foreign file',
        (f) => Buffer.alloc(f.length, 0x5a),
        /meta page 0 does not carry LMDB's magic/,
      ],
      ['second meta page damaged', (f) => flip(f, page(f) + 25), /meta page 1 does not carry/],
      ['format version changed', (f) => flip(f, 28), /meta page 0 has data format 3, expected 2/],
      [
        'truncated to one page',
        (f) => f.subarray(0, page(f)),
        /shorter than its two \d+-byte meta pages/,
      ],
      ['truncated to a few bytes', (f) => f.subarray(0, 40), /meta page 0 is missing/],
    ]
    for (const [label, damage, message] of cases) {
      const dir = tempDir()
      const s = await lmdbStorage(dir)
      s.put('k', text('v'))
      await s.close()
      const file = join(dir, DATA_FILE)
      writeFileSync(file, damage(readFileSync(file)))
      for (let attempt = 0; attempt < 2; attempt++) {
        const error = await expectStorageError(() => lmdbStorage(dir), 'IO', message)
        expect(error.message, label).toContain(`${file} is damaged or is not an LMDB data file`)
        expect(error.message, label).toMatch(/rebuild this replica/)
      }
      // The failed opens released their lock: the second attempt above was not "locked".
      expect(existsSync(join(dir, LOCK_FILE)), label).toBe(false)
    }
  })

  it('opens an empty data file (LMDB initializes it)', async () => {
    const dir = tempDir()
    writeFileSync(join(dir, DATA_FILE), '')
    const s = await lmdbStorage(dir)
    s.put('k', text('v'))
    await s.close()
    const again = await lmdbStorage(dir)
    expect(str(again.get('k'))).toBe('v')
    await again.close()
  })
})

describe('one process per store (the lock file)', () => {
  it('refuses a store another live process holds, naming it; takes over once it is killed', async () => {
    const dir = tempDir('locked')
    const holder = runFixture(['hold', dir])
    const output = lines(holder)[Symbol.asyncIterator]()
    expect((await output.next()).value).toBe('ready')
    await expectStorageError(
      () => lmdbStorage(dir),
      'IO',
      new RegExp(
        `locked by process ${holder.pid} on host .*Stop that process.*${escapeRegExp(LOCK_FILE)}`,
      ),
    )
    holder.kill('SIGKILL')
    await exited(holder)
    // The holder died without closing: its lock file is stale and is taken over.
    const s = await lmdbStorage(dir)
    expect(str(s.get('owner'))).toBe(String(holder.pid))
    const lock = JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8'))
    expect(lock.pid).toBe(process.pid)
    await s.close()
  })

  it('refuses a second open of the same directory in this process until the first closes', async () => {
    const dir = tempDir()
    const first = await lmdbStorage(dir)
    await expectStorageError(
      () => lmdbStorage(dir),
      'IO',
      /locked by this process .*Close the other LmdbStorage/,
    )
    first.put('k', text('v'))
    await first.close()
    const second = await lmdbStorage(dir)
    expect(str(second.get('k'))).toBe('v')
    await second.close()
  })

  it('refuses a lock held from another host, and an unreadable lock file', async () => {
    const dir = tempDir()
    writeFileSync(
      join(dir, LOCK_FILE),
      JSON.stringify({ pid: 1, host: `not-${hostname()}`, token: 't', since: 'earlier' }),
    )
    await expectStorageError(
      () => lmdbStorage(dir),
      'IO',
      new RegExp(`locked by process 1 on host not-.*delete ${escapeRegExp(join(dir, LOCK_FILE))}`),
    )
    writeFileSync(join(dir, LOCK_FILE), 'garbage')
    await expectStorageError(() => lmdbStorage(dir), 'IO', /a lock file that cannot be read/)
  })

  it('takes over a lock left by a process that is gone', async () => {
    const dir = tempDir()
    const gone = runFixture(['try-open'])
    await exited(gone)
    writeFileSync(
      join(dir, LOCK_FILE),
      JSON.stringify({ pid: gone.pid, host: hostname(), token: 'old', since: 'earlier' }),
    )
    const s = await lmdbStorage(dir)
    expect(JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8')).token).not.toBe('old')
    await s.close()
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false)
  })
})

function flip(bytes: Buffer, at: number): Buffer {
  const copy = Buffer.from(bytes)
  copy[at]! ^= 0x01
  return copy
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}
