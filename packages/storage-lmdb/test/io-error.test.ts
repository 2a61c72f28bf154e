import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { StorageError } from '@consul/xkernel'
import { describe, expect, it } from 'vitest'
import { causeOf, errno, ioError } from '../src/adapters/io-error.js'
import { caught, removeTempDirs, tempDir } from './helpers.js'

describe('io-error', () => {
  it('ioError is a StorageError IO naming the path, the problem and what to do', () => {
    const error = ioError('/data/a', 'it is a file', 'Pass a directory')
    expect(error).toBeInstanceOf(StorageError)
    expect(error.code).toBe('IO')
    expect(error.message).toBe(
      'cannot open LMDB storage at /data/a: it is a file. Pass a directory.',
    )
  })

  it('errno reads the code of a system error, and nothing else', async () => {
    const missing = join(tempDir('io'), 'missing')
    const error = await caught(() => readFileSync(missing))
    expect(errno(error)).toBe('ENOENT')
    expect(errno(new Error('plain'))).toBeUndefined()
    expect(errno(undefined)).toBeUndefined()
    removeTempDirs()
  })

  it('causeOf quotes an error by its message and anything else as a string', () => {
    expect(causeOf(new TypeError('bad'))).toBe('bad')
    expect(causeOf('text')).toBe('text')
    expect(causeOf(42)).toBe('42')
  })
})
