import { MAX_KEY_BYTES, MemoryStorage, StorageError, type StorageOp } from '@consul/xkernel'
import { describe, expect, it } from 'vitest'
import { checkOps } from '../src/storage-ops.js'
import { caught, expectStorageError, text } from './helpers.js'

const ops = (value: unknown) => value as StorageOp[]

/** Bad `batch()` arguments, with the code and message `checkOps` must give. */
const BAD: [label: string, ops: unknown, code: string, message: RegExp][] = [
  ['not an array', 'nope', 'INVALID_VALUE', /^batch\(\) takes an array of ops$/],
  ['undefined', undefined, 'INVALID_VALUE', /^batch\(\) takes an array of ops$/],
  ['a null op', [null], 'INVALID_VALUE', /^a storage op must be \{ type: "put" \| "del"/],
  ['a string op', ['put k'], 'INVALID_VALUE', /^a storage op must be/],
  ['an unknown type', [{ type: 'upsert', key: 'k' }], 'INVALID_VALUE', /^a storage op must be/],
  ['no type', [{ key: 'k', value: text('v') }], 'INVALID_VALUE', /^a storage op must be/],
  ['an empty key', [{ type: 'del', key: '' }], 'INVALID_KEY', /non-empty string/],
  ['a number key', [{ type: 'put', key: 7, value: text('v') }], 'INVALID_KEY', /non-empty/],
  [
    'a key over the limit',
    [{ type: 'put', key: 'é'.repeat(MAX_KEY_BYTES / 2 + 1), value: text('v') }],
    'INVALID_KEY',
    /longer than 500 UTF-8 bytes/,
  ],
  ['a lone surrogate', [{ type: 'del', key: 'a\uD800' }], 'INVALID_KEY', /surrogate/],
  [
    'a put without a value',
    [{ type: 'put', key: 'k' }],
    'INVALID_VALUE',
    /^value for "k" must be a Uint8Array, got undefined$/,
  ],
  [
    'a put of an array',
    [{ type: 'put', key: 'k', value: [1, 2] }],
    'INVALID_VALUE',
    /^value for "k" must be a Uint8Array, got object$/,
  ],
  [
    'a bad op after good ones',
    [
      { type: 'put', key: 'a', value: text('1') },
      { type: 'del', key: 'b' },
      { type: 'put', key: 'c', value: 'not bytes' },
    ],
    'INVALID_VALUE',
    /^value for "c" must be a Uint8Array, got string$/,
  ],
]

describe('checkOps', () => {
  it('accepts puts and deletes of valid keys, an empty batch, and keys at the size limit', () => {
    expect(() => checkOps([])).not.toThrow()
    expect(() =>
      checkOps([
        { type: 'put', key: 'log/1', value: text('x') },
        { type: 'put', key: 'empty', value: new Uint8Array(0) },
        { type: 'put', key: 'buffer', value: Buffer.from('a Buffer is a Uint8Array') },
        { type: 'del', key: 'log/0' },
        { type: 'put', key: 'x'.repeat(MAX_KEY_BYTES), value: text('max') },
        { type: 'put', key: 'ok\u{1F600}', value: text('paired surrogates are fine') },
      ]),
    ).not.toThrow()
  })

  it('does not look at the value of a delete', () => {
    expect(() => checkOps(ops([{ type: 'del', key: 'k', value: 'ignored' }]))).not.toThrow()
  })

  it.each(BAD)('rejects %s', async (_label, bad, code, message) => {
    await expectStorageError(() => checkOps(ops(bad)), code, message)
  })

  it.each(BAD)(
    'gives the same code and message as xkernel’s MemoryStorage for %s',
    async (_label, bad) => {
      const ours = await caught(() => checkOps(ops(bad)))
      const xkernel = await caught(() => new MemoryStorage().batch(ops(bad)))
      expect(StorageError.isInstance(xkernel)).toBe(true)
      expect({
        code: (ours as StorageError).code,
        message: (ours as StorageError).message,
      }).toEqual({
        code: (xkernel as StorageError).code,
        message: (xkernel as StorageError).message,
      })
    },
  )
})
