import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { StorageCorruptedError } from '@consul/xkernel'
import { afterEach, describe, expect, it } from 'vitest'
import { DATA_FILE, lmdbStorage } from '../src/index.js'
import { RECORD_HEADER_BYTES } from '../src/record.js'
import { caught, removeTempDirs, str, tempDir, text } from './helpers.js'

afterEach(removeTempDirs)

/** Offsets of every copy of `needle` in `haystack` (LMDB may keep old copies of a page). */
function offsetsOf(haystack: Buffer, needle: Uint8Array): number[] {
  const found: number[] = []
  for (let at = haystack.indexOf(needle); at !== -1; at = haystack.indexOf(needle, at + 1)) {
    found.push(at)
  }
  return found
}

/** Flips bit 0 of the byte `delta` bytes from the start of every copy of `value` in the file. */
function damage(file: string, value: Uint8Array, delta: number): number {
  const bytes = readFileSync(file)
  const offsets = offsetsOf(bytes, value)
  for (const at of offsets) bytes[at + delta]! ^= 0x01
  writeFileSync(file, bytes)
  return offsets.length
}

async function storeWith(entries: Record<string, string>): Promise<string> {
  const dir = tempDir('corrupt')
  const s = await lmdbStorage(dir)
  s.batch(Object.entries(entries).map(([key, value]) => ({ type: 'put', key, value: text(value) })))
  await s.sync()
  await s.close()
  return dir
}

function expectCorrupted(error: unknown, key: string, dir: string, detail: RegExp): void {
  expect(error).toBeInstanceOf(StorageCorruptedError)
  const corrupted = error as StorageCorruptedError
  expect(corrupted.code).toBe('CORRUPTED')
  expect(corrupted.key).toBe(key)
  expect(corrupted.location).toBe(join(dir, DATA_FILE))
  expect(corrupted.message).toContain(JSON.stringify(key))
  expect(corrupted.message).toContain(join(dir, DATA_FILE))
  expect(corrupted.message).toMatch(detail)
}

describe('records damaged on disk', () => {
  const probe = 'PROBE-7f3a9c21-a value nobody else writes'

  it('a flipped value byte in data.mdb raises StorageCorruptedError naming the key and the file', async () => {
    const dir = await storeWith({ before: 'fine', victim: probe, zafter: 'fine too' })
    expect(damage(join(dir, DATA_FILE), text(probe), 10)).toBeGreaterThan(0)
    const s = await lmdbStorage(dir)
    try {
      expectCorrupted(await caught(() => s.get('victim')), 'victim', dir, /checksum mismatch/)
      // A scan stops at the damaged record rather than skip it or return its bytes.
      const seen: string[] = []
      const error = await caught(() => {
        for (const entry of s.scan()) seen.push(entry.key)
      })
      expectCorrupted(error, 'victim', dir, /checksum mismatch/)
      expect(seen).toEqual(['before'])
      expectCorrupted(
        await caught(() => [...s.scan({ reverse: true })]),
        'victim',
        dir,
        /checksum mismatch/,
      )
      // The other records are intact and still readable.
      expect(str(s.get('before'))).toBe('fine')
      expect([...s.scan({ start: 'w' })].map((e) => e.key)).toEqual(['zafter'])
      expect(s.stats().corruptedReads).toBe(3)
      // Overwriting the damaged record repairs it.
      s.put('victim', text('rewritten'))
      await s.sync()
      expect(str(s.get('victim'))).toBe('rewritten')
    } finally {
      await s.close()
    }
  })

  it('a damaged header (format byte) is reported, not decoded', async () => {
    const dir = await storeWith({ victim: probe })
    expect(damage(join(dir, DATA_FILE), text(probe), -RECORD_HEADER_BYTES)).toBeGreaterThan(0)
    const s = await lmdbStorage(dir)
    try {
      expectCorrupted(await caught(() => s.get('victim')), 'victim', dir, /unknown record format/)
    } finally {
      await s.close()
    }
  })

  it('a damaged stored checksum is reported', async () => {
    const dir = await storeWith({ victim: probe })
    expect(damage(join(dir, DATA_FILE), text(probe), -2)).toBeGreaterThan(0)
    const s = await lmdbStorage(dir)
    try {
      expectCorrupted(await caught(() => s.get('victim')), 'victim', dir, /checksum mismatch/)
    } finally {
      await s.close()
    }
  })
})
