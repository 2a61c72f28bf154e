import { spawn } from 'node:child_process'
import { chmodSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { prepareDirectory } from '../src/adapters/directory.js'
import { expectStorageError, lines, removeTempDirs, tempDir } from './helpers.js'

afterEach(() => removeTempDirs())

const fixture = fileURLToPath(new URL('./fixtures/prepare-directory.ts', import.meta.url))
const packageDir = fileURLToPath(new URL('..', import.meta.url))

describe('prepareDirectory', () => {
  it('creates a missing directory whose parent exists', () => {
    const dir = join(tempDir('dir'), 'new')
    prepareDirectory(dir, true)
    expect(statSync(dir).isDirectory()).toBe(true)
    expect(readdirSync(dir)).toEqual([])
  })

  it('accepts an existing directory as it is', () => {
    const dir = tempDir('dir')
    writeFileSync(join(dir, 'kept'), 'x')
    prepareDirectory(dir, true)
    prepareDirectory(dir, false)
    expect(readdirSync(dir)).toEqual(['kept'])
  })

  it('with create = false refuses a missing directory and creates nothing', async () => {
    const base = tempDir('dir')
    const dir = join(base, 'absent')
    await expectStorageError(
      () => prepareDirectory(dir, false),
      'IO',
      new RegExp(
        `^cannot open LMDB storage at ${escapeRegExp(dir)}: the directory does not exist\\. Create it, or open with \\{ create: true \\}\\.$`,
      ),
    )
    expect(readdirSync(base)).toEqual([])
  })

  it('creates only the last path component: a missing parent is an error', async () => {
    const base = tempDir('dir')
    const parent = join(base, 'typo')
    await expectStorageError(
      () => prepareDirectory(join(parent, 'store'), true),
      'IO',
      new RegExp(
        `its parent directory ${escapeRegExp(parent)} does not exist\\. Create the parent first`,
      ),
    )
    expect(readdirSync(base)).toEqual([])
  })

  it('refuses a file where the directory should be, leaving the file alone', async () => {
    const file = join(tempDir('dir'), 'a-file')
    writeFileSync(file, 'not a store')
    for (const create of [true, false]) {
      await expectStorageError(
        () => prepareDirectory(file, create),
        'IO',
        new RegExp(
          `^cannot open LMDB storage at ${escapeRegExp(file)}: it exists but is not a directory\\. Pass the path of a directory`,
        ),
      )
    }
    expect(readFileSync(file, 'utf8')).toBe('not a store')
  })

  it('refuses a path whose parent is a file', async () => {
    const file = join(tempDir('dir'), 'a-file')
    writeFileSync(file, '')
    await expectStorageError(
      () => prepareDirectory(join(file, 'store'), true),
      'IO',
      new RegExp(`its parent ${escapeRegExp(file)} is not a directory\\. Pass a path inside`),
    )
  })

  it('refuses a directory this process may not write, and one it cannot create', async () => {
    // Root ignores permission bits: then run the check as `nobody` in a child process.
    const base = tempDir('perm')
    chmodSync(base, 0o755)
    const readOnly = join(base, 'read-only')
    mkdirSync(readOnly)
    chmodSync(readOnly, 0o555)
    const inside = join(readOnly, 'store')
    const results = await prepareAsUnprivileged([readOnly, inside])
    expect(results[0]).toEqual({
      code: 'IO',
      message: `cannot open LMDB storage at ${readOnly}: the directory is not readable and writable by this process (EACCES). Fix its owner or permissions, or pass a directory this process may write.`,
    })
    expect(results[1]).toMatchObject({ code: 'IO' })
    expect(results[1]!.message).toMatch(
      new RegExp(
        `^cannot open LMDB storage at ${escapeRegExp(inside)}: cannot create the directory \\(EACCES.*\\)\\. Make ${escapeRegExp(readOnly)} writable by this process`,
      ),
    )
    expect(readdirSync(readOnly)).toEqual([])
  })
})

type Result = { ok?: true; code?: string; message?: string }

/** `prepareDirectory(path, true)` for each path, run by a user permission bits apply to. */
async function prepareAsUnprivileged(paths: string[]): Promise<Result[]> {
  const asNobody = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {}
  const child = spawn(process.execPath, ['--import', 'tsx', fixture, ...paths], {
    cwd: packageDir,
    stdio: ['ignore', 'pipe', 'inherit'],
    ...asNobody,
  })
  return (await lines(child).all()).map((line) => JSON.parse(line) as Result)
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}
