import { describe, expect, it } from 'vitest'
import {
  checkDirArgument,
  type LmdbStorageOptions,
  resolveOpenOptions,
} from '../src/open-options.js'
import { expectStorageError } from './helpers.js'

const resolve = (options: unknown) => resolveOpenOptions(options as LmdbStorageOptions)

describe('checkDirArgument', () => {
  it('accepts any non-empty string (relative paths too)', () => {
    expect(() => checkDirArgument('data/replica-a')).not.toThrow()
    expect(() => checkDirArgument('/')).not.toThrow()
  })

  it('rejects an empty path and non-strings with INVALID_VALUE', async () => {
    for (const dir of ['', undefined, null, 7, ['a']]) {
      await expectStorageError(
        () => checkDirArgument(dir),
        'INVALID_VALUE',
        /^lmdbStorage\(dir\) takes the path of a directory$/,
      )
    }
  })
})

describe('resolveOpenOptions', () => {
  it('fills in the defaults: create, commit at the next turn, LMDB’s map size', () => {
    expect(resolve({})).toEqual({ create: true, commitDelayMs: 0, mapSizeBytes: undefined })
  })

  it('keeps the values it is given', () => {
    expect(resolve({ create: false, commitDelayMs: 2.5, mapSizeBytes: 1 << 24 })).toEqual({
      create: false,
      commitDelayMs: 2.5,
      mapSizeBytes: 1 << 24,
    })
    expect(resolve({ commitDelayMs: 0, mapSizeBytes: 1 })).toMatchObject({
      commitDelayMs: 0,
      mapSizeBytes: 1,
    })
  })

  it('treats an option set to undefined as absent', () => {
    expect(resolve({ create: undefined, commitDelayMs: undefined })).toEqual(resolve({}))
  })

  it('rejects options that are not an object', async () => {
    for (const options of [null, 'fast', 3, true]) {
      await expectStorageError(
        () => resolve(options),
        'INVALID_VALUE',
        /^lmdbStorage options must be an object$/,
      )
    }
  })

  it('rejects a create that is not a boolean', async () => {
    for (const create of ['yes', 1, 0, null]) {
      await expectStorageError(
        () => resolve({ create }),
        'INVALID_VALUE',
        /^lmdbStorage option create must be a boolean$/,
      )
    }
  })

  it('rejects a commitDelayMs that is negative, not finite or not a number, naming it', async () => {
    const cases: [unknown, string][] = [
      [-1, '-1'],
      [Number.NaN, 'NaN'],
      [Number.POSITIVE_INFINITY, 'Infinity'],
      ['5', '5'],
      [null, 'null'],
    ]
    for (const [commitDelayMs, shown] of cases) {
      const error = await expectStorageError(() => resolve({ commitDelayMs }), 'INVALID_VALUE')
      expect(error.message).toBe(
        `lmdbStorage option commitDelayMs must be a number ≥ 0, got ${shown}`,
      )
    }
  })

  it('rejects a mapSizeBytes that is not a positive safe integer, naming it', async () => {
    const cases: [unknown, string][] = [
      [0, '0'],
      [-4096, '-4096'],
      [1.5, '1.5'],
      [2 ** 53, String(2 ** 53)],
      ['4096', '4096'],
    ]
    for (const [mapSizeBytes, shown] of cases) {
      const error = await expectStorageError(() => resolve({ mapSizeBytes }), 'INVALID_VALUE')
      expect(error.message).toBe(
        `lmdbStorage option mapSizeBytes must be a positive integer, got ${shown}`,
      )
    }
  })

  it('checks create first, then commitDelayMs, then mapSizeBytes', () => {
    expect(() => resolve({ create: 'x', commitDelayMs: -1, mapSizeBytes: 0 })).toThrow(
      /option create/,
    )
    expect(() => resolve({ commitDelayMs: -1, mapSizeBytes: 0 })).toThrow(/commitDelayMs/)
  })
})
