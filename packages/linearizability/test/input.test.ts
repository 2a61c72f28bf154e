import { describe, expect, it } from 'vitest'
import {
  check,
  checkEvents,
  checkStaleReads,
  createRecorder,
  type KvInput,
  type KvOperation,
  type KvOutput,
  kvModel,
  LinearizabilityError,
  operationsFromEvents,
} from '../src/index.js'
import { done, get, set } from './support/ops.js'

/** `[operation, <hole>, operation]`: an array with a missing element at 1. */
function sparse(operation: unknown, length: number): unknown[] {
  const array: unknown[] = [operation]
  array[length] = operation
  return array
}

function errorOf(run: () => unknown): LinearizabilityError {
  try {
    run()
  } catch (error) {
    if (LinearizabilityError.isInstance(error)) return error
    throw error
  }
  throw new Error('expected a LinearizabilityError')
}

describe('bad input: a clear LinearizabilityError before any search, never a crash', () => {
  const good = done(1, get('x'), 0, 1, null)
  const cases: [string, unknown, RegExp][] = [
    ['not an array', { length: 1 }, /must be an array of operations \(got an object\)/],
    ['a non-object', [good, 42], /operation #1 is number 42, not an operation object/],
    ['a missing clientId', [{ ...good, clientId: undefined }], /operation #0 has no clientId/],
    ['a NaN call', [{ ...good, call: Number.NaN }], /call must be a finite number \(got NaN\)/],
    [
      'a missing return field',
      [{ clientId: 1, input: get('x'), call: 0 }],
      /has no `return` field/,
    ],
    [
      'a return before the call',
      [done(1, get('x'), 7, 5, null)],
      /returns \(5\) before it is called \(7\)/,
    ],
    ['a NaN return', [{ ...good, return: Number.NaN }], /return must be a number, or undefined/],
    ['the same object twice', [good, good], /operation #1 is the same object as an earlier one/],
    [
      'an unknown command',
      [done(1, { op: 'flushall' } as unknown as KvInput, 0, 1, 'OK')],
      /input.op must be one of get, set, .*multi \(got "flushall"\)/,
    ],
    [
      'an input that is not an object',
      [done(1, 'GET x' as unknown as KvInput, 0, 1, null)],
      /input must be an object/,
    ],
    [
      'an infinite call',
      [{ ...good, call: Number.POSITIVE_INFINITY }],
      /call must be a finite number \(got Infinity\)/,
    ],
    [
      'a call that is a string',
      [{ ...good, call: '5' }],
      /call must be a finite number \(got "5"\)/,
    ],
    [
      'a return of -Infinity',
      [{ ...good, return: Number.NEGATIVE_INFINITY }],
      /return must be a number/,
    ],
    ['a return that is null', [{ ...good, return: null }], /return must be a number, or undefined/],
    [
      'a hole in the history',
      sparse(good, 2),
      /operation #1 is undefined, not an operation object/,
    ],
    [
      'an MGET without keys',
      [done(1, { op: 'mget', keys: [] } as unknown as KvInput, 0, 1, [])],
      /mget: input.keys must be a non-empty array of strings/,
    ],
    [
      'an MGET with one output too few',
      [done(1, { op: 'mget', keys: ['a', 'b'] }, 0, 1, ['1'])],
      /mget returns an array of strings and nulls, one per key \(2; got \["1"\]\)/,
    ],
    [
      'an MSET of a key without a value',
      [done(1, { op: 'mset', entries: [['a']] } as unknown as KvInput, 0, 1, 'OK')],
      /mset: input.entries must be a non-empty array of \[key, value\] strings/,
    ],
    [
      'a DEL with key and keys',
      [done(1, { op: 'del', key: 'a', keys: ['b'] } as unknown as KvInput, 0, 1, 1)],
      /del: give input.key or input.keys, not both/,
    ],
    [
      'a transaction inside a transaction',
      [
        done(
          1,
          { op: 'multi', commands: [{ op: 'multi', commands: [] }] } as unknown as KvInput,
          0,
          1,
          [],
        ),
      ],
      /multi: command #0: a transaction cannot hold a multi/,
    ],
    [
      'an EXEC output of the wrong length (an aborted transaction recorded as ok)',
      [done(1, { op: 'multi', commands: [get('a'), get('b')] }, 0, 1, null)],
      /multi returns the array EXEC returned.*EXECABORT/,
    ],
    [
      'a system error recorded as an output',
      [done(1, set('x', 'v'), 0, 1, { error: 'CLUSTERDOWN The cluster is down' })],
      /got the error reply "CLUSTERDOWN The cluster is down", which the command cannot give on any data.*failed.*unknown outcome/,
    ],
    [
      'an error reply to a command that cannot fail',
      [done(1, { op: 'mset', entries: [['a', '1']] }, 0, 1, { error: 'ERR whatever' })],
      /MSET a "1" got the error reply/,
    ],
    [
      'an INCR whose output is a numeric string',
      [done(1, { op: 'incr', key: 'n' }, 0, 1, '1')],
      /incr returns an integer \(got "1"\)/,
    ],
    [
      'a key that is not a string',
      [done(1, { op: 'get', key: 1 } as unknown as KvInput, 0, 1, null)],
      /input.key must be a string/,
    ],
    [
      'a GET with a number output',
      [done(1, get('x'), 0, 1, 3)],
      /get returns a string or null \(got 3\)/,
    ],
    [
      'a SET without a value',
      [done(1, { op: 'set', key: 'x' } as unknown as KvInput, 0, 1, 'OK')],
      /set: input.value must be a string/,
    ],
  ]
  for (const [name, history, message] of cases) {
    it(`rejects ${name}`, () => {
      const error = errorOf(() => check(kvModel(), history as KvOperation[]))
      expect(error.code).toBe('INVALID_HISTORY')
      expect(error.message).toMatch(message)
      expect(errorOf(() => checkStaleReads(history as KvOperation[])).message).toMatch(message)
    })
  }

  it('accepts a missing output on an unknown outcome, and Infinity as unknown', () => {
    expect(
      check(kvModel(), [
        { clientId: 'a', input: set('x', 'v'), call: 0, return: Number.POSITIVE_INFINITY },
      ]).result,
    ).toBe('ok')
  })

  it('rejects bad options', () => {
    expect(errorOf(() => check(kvModel(), [], { timeoutMs: -1 })).code).toBe('INVALID_OPTIONS')
    expect(errorOf(() => check(kvModel(), [], { timeoutMs: Number.NaN })).code).toBe(
      'INVALID_OPTIONS',
    )
    expect(errorOf(() => check(kvModel(), [], null as unknown as object)).code).toBe(
      'INVALID_OPTIONS',
    )
    expect(
      errorOf(() => checkStaleReads([], { readYourWrites: 'yes' as unknown as boolean })).message,
    ).toMatch(/readYourWrites must be a boolean/)
    expect(errorOf(() => createRecorder({ now: 1 as unknown as () => number })).code).toBe(
      'INVALID_OPTIONS',
    )
    expect(
      errorOf(() => check(kvModel(), [], { now: 5 as unknown as () => number })).message,
    ).toMatch(/now must be a function/)
  })
})

describe('events', () => {
  it('pairs a return with its client’s open call; a call never returned is an unknown outcome', () => {
    const operations = operationsFromEvents<KvInput, KvOutput>([
      { kind: 'call', clientId: 1, input: set('x', 'a') },
      { kind: 'call', clientId: 2, input: get('x') },
      { kind: 'return', clientId: 1, output: 'OK' },
      { kind: 'call', clientId: 3, input: set('x', 'b') },
      { kind: 'return', clientId: 2, output: 'a' },
    ])
    expect(operations).toEqual([
      { clientId: 1, input: set('x', 'a'), call: 0, return: 2, output: 'OK' },
      { clientId: 2, input: get('x'), call: 1, return: 4, output: 'a' },
      { clientId: 3, input: set('x', 'b'), call: 3, return: undefined },
    ])
    expect(
      checkEvents(kvModel(), [
        { kind: 'call', clientId: 1, input: set('x', 'a') },
        { kind: 'return', clientId: 1, output: 'OK' },
        { kind: 'call', clientId: 2, input: get('x') },
        { kind: 'return', clientId: 2, output: null },
      ]).result,
    ).toBe('illegal')
  })

  it('pairs by id when a client pipelines', () => {
    const operations = operationsFromEvents<KvInput, KvOutput>([
      { kind: 'call', clientId: 1, input: set('x', 'a'), id: 'p' },
      { kind: 'call', clientId: 1, input: get('x'), id: 'q' },
      { kind: 'return', clientId: 1, output: null, id: 'q' },
      { kind: 'return', clientId: 1, output: 'OK', id: 'p' },
    ])
    expect(operations.map((op) => [op.call, op.return])).toEqual([
      [0, 3],
      [1, 2],
    ])
  })

  it('says what is wrong with broken events', () => {
    expect(() => operationsFromEvents([{ kind: 'return', clientId: 1, output: 'OK' }])).toThrow(
      /without an open call/,
    )
    expect(() =>
      operationsFromEvents([
        { kind: 'call', clientId: 1, input: get('x') },
        { kind: 'call', clientId: 1, input: get('x') },
      ]),
    ).toThrow(/calls again while its earlier call is open; give the events ids/)
    expect(() => operationsFromEvents([{ kind: 'begin', clientId: 1 } as never])).toThrow(
      /kind must be 'call' or 'return'/,
    )
  })
})

describe('a model that throws', () => {
  const throwing = (name: 'init' | 'partition' | 'key' | 'validate') => ({
    ...kvModel(),
    [name]: () => {
      throw new Error(`${name} broke`)
    },
  })
  for (const name of ['init', 'partition', 'key', 'validate'] as const)
    it(`turns a throwing ${name}() into MODEL_FAILED`, () => {
      const error = errorOf(() => check(throwing(name), [done(1, set('x', 'a'), 0, 1, 'OK')]))
      expect(error.code).toBe('MODEL_FAILED')
      expect(error.message).toContain(`${name} broke`)
    })

  it('survives a describer that throws', () => {
    const model = {
      ...kvModel(),
      describeOperation: () => {
        throw new Error('no')
      },
      describeState: () => {
        throw new Error('no')
      },
    }
    const result = check(model, [done(1, set('x', 'a'), 0, 1, 'OK'), done(2, get('x'), 2, 3, 'b')])
    expect(result.result).toBe('illegal')
    expect(result.counterexample!.text).toContain('{"op":"get","key":"x"} → "b"')
  })
})

describe('createRecorder', () => {
  it('records intervals in the order this process saw them', () => {
    const recorder = createRecorder<KvInput, KvOutput>()
    const first = recorder.invoke(1, set('x', 'a'))
    const second = recorder.invoke(2, get('x'))
    first.ok('OK')
    const third = recorder.invoke(3, set('x', 'b'))
    second.ok('a')
    third.unknown()
    recorder.invoke(4, get('x')) // still pending: unknown
    expect(recorder.history()).toEqual([
      { clientId: 1, input: set('x', 'a'), call: 0, return: 2, output: 'OK' },
      { clientId: 2, input: get('x'), call: 1, return: 4, output: 'a' },
      { clientId: 3, input: set('x', 'b'), call: 3, return: undefined },
      { clientId: 4, input: get('x'), call: 5, return: undefined },
    ])
    expect(check(kvModel(), recorder.history()).result).toBe('ok')
    expect(() => first.ok('OK')).toThrow(/already settled \(ok\), now ok/)
    expect(() => third.fail()).toThrow(/already settled \(unknown\), now fail/)
  })

  it('leaves out what failed: it definitely did not happen', () => {
    const recorder = createRecorder<KvInput, KvOutput>()
    recorder.invoke(1, set('x', 'a')).ok('OK')
    recorder.invoke(2, set('x', 'b')).fail() // -CLUSTERDOWN: not applied
    recorder.invoke(3, get('x')).ok('a')
    expect(recorder.history().map((op) => op.clientId)).toEqual([1, 3])
    expect(check(kvModel(), recorder.history()).result).toBe('ok')
    // A read of its value is now a read of a value nobody wrote: illegal. Recorded as
    // unknown instead, the same read would be fine (it may have been applied after all).
    recorder.invoke(3, get('x')).ok('b')
    expect(check(kvModel(), recorder.history()).result).toBe('illegal')
    const asUnknown = createRecorder<KvInput, KvOutput>()
    asUnknown.invoke(1, set('x', 'a')).ok('OK')
    asUnknown.invoke(2, set('x', 'b')).unknown()
    asUnknown.invoke(3, get('x')).ok('a')
    asUnknown.invoke(3, get('x')).ok('b')
    expect(check(kvModel(), asUnknown.history()).result).toBe('ok')
  })

  it('keeps recording after a snapshot', () => {
    const recorder = createRecorder<KvInput, KvOutput>()
    const pending = recorder.invoke(1, set('x', 'a'))
    expect(recorder.history()).toEqual([
      { clientId: 1, input: set('x', 'a'), call: 0, return: undefined },
    ])
    pending.ok('OK')
    expect(recorder.history()).toEqual([
      { clientId: 1, input: set('x', 'a'), call: 0, return: 1, output: 'OK' },
    ])
  })

  it('takes a clock', () => {
    let time = 100
    const recorder = createRecorder<KvInput, KvOutput>({ now: () => (time += 10) })
    recorder.invoke(1, get('x')).ok(null)
    expect(recorder.history()).toEqual([
      { clientId: 1, input: get('x'), call: 110, return: 120, output: null },
    ])
  })
})
