/**
 * Errors survive two copies of the package in one process: `isInstance` checks a
 * `Symbol.for` marker, where `instanceof` fails. The built package (dist) and the source
 * loaded here are two copies, as an application and a scenario module loaded through tsx are.
 */
import { describe, expect, it } from 'vitest'
import * as source from '../src/index.js'

// A computed specifier: the built copy is loaded at run time (the test runs after the build),
// and type-checking does not need it.
const built = (await import(new URL('../dist/index.js', import.meta.url).href)) as typeof source

describe('error classes across two copies of @consul/xkernel', () => {
  it('isInstance recognises an error made by the other copy; instanceof does not', () => {
    const corrupted = new built.StorageCorruptedError('k', 'disk', 'bit flip')
    expect(corrupted instanceof source.StorageCorruptedError).toBe(false)
    expect(source.StorageCorruptedError.isInstance(corrupted)).toBe(true)
    expect(source.StorageError.isInstance(corrupted)).toBe(true)
    expect(source.DecodeError.isInstance(new built.DecodeError('INVALID', 'x'))).toBe(true)
    expect(source.XKernelError.isInstance(new built.XKernelError('INVALID_ARGUMENT', 'x'))).toBe(
      true,
    )
  })

  it('isInstance rejects other errors and non-errors', () => {
    expect(source.StorageCorruptedError.isInstance(new source.StorageError('IO', 'x'))).toBe(false)
    expect(source.DecodeError.isInstance(new source.StorageError('IO', 'x'))).toBe(false)
    expect(source.DecodeError.isInstance(new Error('x'))).toBe(false)
    for (const value of [undefined, null, 'DecodeError', 3, {}])
      expect(source.DecodeError.isInstance(value)).toBe(false)
  })
})
