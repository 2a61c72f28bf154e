import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { checkDataFile, DATA_FILE } from '../src/adapters/data-file.js'
import { lmdbStorage } from '../src/index.js'
import { expectStorageError, removeTempDirs, tempDir, text } from './helpers.js'

afterEach(() => removeTempDirs())

/** A directory holding a real LMDB data file with one record. */
async function realStore(): Promise<string> {
  const dir = tempDir('data')
  const storage = await lmdbStorage(dir)
  storage.put('k', text('v'))
  await storage.close()
  return dir
}

describe('checkDataFile', () => {
  it('passes a directory without a data file (a new store), creating nothing', () => {
    const dir = tempDir('data')
    checkDataFile(dir)
    expect(readdirSync(dir)).toEqual([])
  })

  it('passes an empty data file (LMDB initializes it) and one LMDB wrote', async () => {
    const empty = tempDir('data')
    writeFileSync(join(empty, DATA_FILE), '')
    checkDataFile(empty)
    checkDataFile(await realStore())
  })

  it('refuses a foreign or damaged data file, naming it and saying how to recover', async () => {
    const dir = await realStore()
    const file = join(dir, DATA_FILE)
    const original = readFileSync(file)
    writeFileSync(file, Buffer.alloc(original.length, 0x5a))
    await expectStorageError(
      () => checkDataFile(dir),
      'IO',
      new RegExp(
        `^cannot open LMDB storage at ${escapeRegExp(dir)}: ${escapeRegExp(file)} is damaged or is not an LMDB data file: meta page 0 does not carry LMDB's magic number\\. Move the directory aside and rebuild this replica`,
      ),
    )
    writeFileSync(file, original.subarray(0, 40))
    await expectStorageError(() => checkDataFile(dir), 'IO', /meta page 0 is missing/)
    // The check only reads.
    expect(readFileSync(file)).toHaveLength(40)
  })
})

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}
