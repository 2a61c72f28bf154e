/**
 * Errors survive two copies of the package in one process: `isInstance` checks a
 * `Symbol.for` marker, where `instanceof` fails. The built package (dist) and the source
 * loaded here are two copies, as an application and a scenario module loaded through tsx are.
 */
import { describe, expect, it } from 'vitest'
import * as source from '../src/index.js'
import * as sourceOrder from '../src/order.js'

// A computed specifier: the built copy is loaded at run time (the test runs after the build),
// and type-checking does not need it.
const built = (await import(new URL('../dist/index.js', import.meta.url).href)) as typeof source
const builtOrder = (await import(
  new URL('../dist/order.js', import.meta.url).href
)) as typeof sourceOrder

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

  it('OrderError (the ./order entry) is recognised across copies too, and only it', () => {
    const gap = new builtOrder.OrderError('WAVE_GAP', 'x')
    expect(gap instanceof sourceOrder.OrderError).toBe(false)
    expect(sourceOrder.OrderError.isInstance(gap)).toBe(true)
    expect(gap).toMatchObject({ name: 'OrderError', code: 'WAVE_GAP' })
    expect(
      sourceOrder.OrderError.isInstance(new source.XKernelError('INVALID_ARGUMENT', 'x')),
    ).toBe(false)
    expect(source.XKernelError.isInstance(new sourceOrder.OrderError('CLOSED', 'x'))).toBe(false)
    const cause = new Error('classOf threw')
    expect(new sourceOrder.OrderError('BAD_CLASS', 'x', { cause }).cause).toBe(cause)
  })

  it('notApplied: OrderError carries it (default false), and any error with the property reads as such', () => {
    expect(new sourceOrder.OrderError('CLOSED', 'x').notApplied).toBe(false)
    const refused = new builtOrder.OrderError('NO_PRIMARY', 'x', { notApplied: true })
    expect(refused.notApplied).toBe(true)
    expect(source.notApplied(refused)).toBe(true) // across copies: a plain property
    expect(source.notApplied(Object.assign(new Error('x'), { notApplied: true }))).toBe(true)
    for (const value of [
      new sourceOrder.OrderError('NO_PRIMARY', 'x'),
      Object.assign(new Error('x'), { notApplied: 'yes' }),
      new Error('x'),
      undefined,
      null,
      'notApplied',
      { notApplied: 1 },
    ])
      expect(source.notApplied(value)).toBe(false)
  })

  it('isInstance rejects other errors and non-errors', () => {
    expect(source.StorageCorruptedError.isInstance(new source.StorageError('IO', 'x'))).toBe(false)
    expect(source.DecodeError.isInstance(new source.StorageError('IO', 'x'))).toBe(false)
    expect(source.DecodeError.isInstance(new Error('x'))).toBe(false)
    for (const value of [undefined, null, 'DecodeError', 3, {}])
      expect(source.DecodeError.isInstance(value)).toBe(false)
  })
})
