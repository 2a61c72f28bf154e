import { describe, expect, it } from 'vitest'
import {
  applyKv,
  check,
  type KvInput,
  type KvOperation,
  type KvOutput,
  type KvState,
  kvModel,
  type Model,
  partitionBy,
} from '../src/index.js'
import {
  append,
  del,
  done,
  error,
  get,
  hget,
  hset,
  incr,
  lost,
  mget,
  mset,
  multi,
  rename,
  set,
} from './support/ops.js'

const state = (entries: Record<string, string>): KvState => new Map(Object.entries(entries))
const model = kvModel()
const fits = (before: KvState, input: KvInput, output: KvOutput) =>
  model.step(before, input, output).ok
/** The state after a step that must fit. */
const after = (before: KvState, input: KvInput, output: KvOutput): KvState => {
  const stepped = model.step(before, input, output)
  if (!stepped.ok) throw new Error(`rejected: ${stepped.reason}`)
  return stepped.state
}
const plain = (s: KvState) =>
  Object.fromEntries(
    [...s].map(([key, value]) => [
      key,
      typeof value === 'string' ? value : Object.fromEntries(value),
    ]),
  )

/** A broken store's histories, each of which a linearizable store could not produce. */
const broken: Record<string, KvOperation[]> = {
  'a stale read after a completed write': [
    done(1, set('x', 'a'), 0, 1, 'OK'),
    done(1, set('x', 'b'), 2, 3, 'OK'),
    done(2, get('x'), 4, 5, 'a'),
  ],
  'a lost write (acknowledged, then gone)': [
    done(1, set('x', 'a'), 0, 1, 'OK'),
    done(2, append('x', '+'), 2, 3, 2),
    done(3, get('x'), 4, 5, 'a'),
  ],
  'a lost update: two concurrent INCRs both returning 1': [
    done(1, incr('n'), 0, 10, 1),
    done(2, incr('n'), 0, 10, 1),
  ],
  'a read of a value never written': [
    done(1, set('x', 'a'), 0, 1, 'OK'),
    done(2, get('x'), 0, 5, 'z'),
  ],
  'a read going backwards (a new value, then the old one)': [
    done(1, set('x', 'a'), 0, 1, 'OK'),
    done(1, set('x', 'b'), 2, 10, 'OK'),
    done(2, get('x'), 3, 4, 'b'),
    done(3, get('x'), 5, 6, 'a'),
  ],
  'two concurrent SETs whose order two readers see differently': [
    done(1, set('x', 'a'), 0, 10, 'OK'),
    done(2, set('x', 'b'), 0, 10, 'OK'),
    done(3, get('x'), 11, 12, 'a'),
    done(4, get('x'), 13, 14, 'b'),
  ],
  'two clients each reading the other write first': [
    done(1, set('x', 'a'), 0, 10, 'OK'),
    done(2, set('x', 'b'), 0, 10, 'OK'),
    done(3, get('x'), 1, 4, 'a'),
    done(3, get('x'), 5, 9, 'b'),
    done(4, get('x'), 1, 4, 'b'),
    done(4, get('x'), 5, 9, 'a'),
  ],
  'a DEL that removed a key already deleted': [
    done(1, set('x', 'a'), 0, 1, 'OK'),
    done(2, del('x'), 2, 10, 1),
    done(3, del('x'), 2, 10, 1),
  ],
  'an INCR that took effect twice (a retried timeout)': [
    done(1, incr('n'), 0, 1, 1),
    lost(1, incr('n'), 2),
    done(2, get('n'), 20, 21, '3'),
  ],
  'an INCR whose effect shows before it was called': [
    done(1, get('n'), 0, 1, '1'),
    lost(2, incr('n'), 2),
  ],
  'a torn MSET: one key new, the other old, after both were read new': [
    done(1, mset({ a: '1', b: '1' }), 0, 10, 'OK'),
    done(2, get('a'), 1, 2, '1'),
    done(3, get('b'), 3, 4, null),
  ],
  'a torn MGET': [
    done(1, mset({ a: '1', b: '1' }), 0, 10, 'OK'),
    done(2, mget('a', 'b'), 1, 9, ['1', null]),
  ],
  'a torn transaction': [
    done(1, multi(incr('a'), incr('b')), 0, 10, [1, 1]),
    done(2, get('b'), 1, 2, '1'),
    done(3, get('a'), 3, 4, null),
  ],
  'a RENAME seen half done': [
    done(1, set('a', 'v'), 0, 1, 'OK'),
    done(1, rename('a', 'b'), 2, 10, 'OK'),
    done(2, get('b'), 3, 4, 'v'),
    done(3, get('a'), 5, 6, 'v'),
  ],
  'a WRONGTYPE from a key that holds a string': [
    done(1, set('h', 'v'), 0, 1, 'OK'),
    done(2, hget('h', 'f'), 2, 3, null),
  ],
}

describe('kvModel: the commands', () => {
  it('GET, SET, DEL, EXISTS, STRLEN', () => {
    expect(fits(state({}), get('x'), null)).toBe(true)
    expect(plain(after(state({}), set('x', 'v'), 'OK'))).toEqual({ x: 'v' })
    expect(plain(after(state({ x: 'v' }), del('x'), 1))).toEqual({})
    expect(fits(state({}), del('x'), 0)).toBe(true)
    expect(fits(state({ x: 'v' }), { op: 'exists', key: 'x' }, 1)).toBe(true)
    expect(fits(state({}), { op: 'strlen', key: 'x' }, 0)).toBe(true)
    expect(fits(state({ x: 'héllo' }), { op: 'strlen', key: 'x' }, 6)).toBe(true) // bytes
    expect(fits(state({ x: 'héllo' }), { op: 'strlen', key: 'x' }, 5)).toBe(false)
  })

  it('SET NX / XX / GET, SETNX, GETSET, GETDEL', () => {
    const old = state({ x: 'old' })
    expect(fits(old, { op: 'set', key: 'x', value: 'v', condition: 'nx' }, null)).toBe(true)
    expect(fits(old, { op: 'set', key: 'x', value: 'v', condition: 'nx' }, 'OK')).toBe(false)
    expect(fits(state({}), { op: 'set', key: 'x', value: 'v', condition: 'xx' }, null)).toBe(true)
    expect(plain(after(old, { op: 'set', key: 'x', value: 'v', get: true }, 'old'))).toEqual({
      x: 'v',
    })
    expect(
      plain(after(old, { op: 'set', key: 'x', value: 'v', condition: 'nx', get: true }, 'old')),
    ).toEqual({ x: 'old' })
    expect(plain(after(state({}), { op: 'setnx', key: 'x', value: 'v' }, 1))).toEqual({ x: 'v' })
    expect(fits(old, { op: 'setnx', key: 'x', value: 'v' }, 0)).toBe(true)
    expect(plain(after(old, { op: 'getset', key: 'x', value: 'v' }, 'old'))).toEqual({ x: 'v' })
    expect(plain(after(old, { op: 'getdel', key: 'x' }, 'old'))).toEqual({})
  })

  it("INCR by Redis's rules: integers only, 64 bits, an error reply otherwise", () => {
    expect(plain(after(state({}), incr('n'), 1))).toEqual({ n: '1' })
    expect(plain(after(state({ n: '10' }), incr('n', -3), 7))).toEqual({ n: '7' })
    for (const notInteger of ['abc', '007', '-0', '+1', ' 1', '1.5', '', '99999999999999999999'])
      expect(fits(state({ n: notInteger }), incr('n'), error('ERR value is not an integer'))).toBe(
        true,
      )
    expect(fits(state({ n: 'abc' }), incr('n'), 1)).toBe(false)
    expect(fits(state({ n: '1' }), incr('n'), error('ERR value is not an integer'))).toBe(false)
    expect(
      fits(state({ n: '9223372036854775807' }), incr('n'), error('ERR increment would overflow')),
    ).toBe(true)
    expect(
      plain(after(state({ n: '9223372036854775806' }), incr('n'), 9223372036854775807n)),
    ).toEqual({ n: '9223372036854775807' })
  })

  it('APPEND returns the new length in bytes', () => {
    expect(plain(after(state({}), append('x', 'ab'), 2))).toEqual({ x: 'ab' })
    expect(plain(after(state({ x: 'ab' }), append('x', 'é'), 4))).toEqual({ x: 'abé' })
  })

  it('MGET, MSET, multi-key DEL and EXISTS, RENAME', () => {
    const ab = state({ a: '1', b: '2' })
    expect(fits(ab, mget('a', 'c', 'b'), ['1', null, '2'])).toBe(true)
    expect(fits(ab, mget('a', 'b'), ['1', null])).toBe(false)
    expect(plain(after(ab, mset({ b: '3', c: '4' }), 'OK'))).toEqual({ a: '1', b: '3', c: '4' })
    expect(plain(after(ab, del('a', 'a', 'c'), 1))).toEqual({ b: '2' })
    expect(fits(ab, { op: 'exists', keys: ['a', 'a', 'c'] }, 2)).toBe(true)
    expect(plain(after(ab, rename('a', 'c'), 'OK'))).toEqual({ b: '2', c: '1' })
    expect(plain(after(ab, rename('a', 'a'), 'OK'))).toEqual({ a: '1', b: '2' })
    expect(fits(ab, rename('x', 'y'), error('ERR no such key'))).toBe(true)
    expect(fits(ab, rename('x', 'y'), 'OK')).toBe(false)
  })

  it('hashes, and WRONGTYPE between strings and hashes', () => {
    const h = after(
      state({}),
      {
        op: 'hset',
        key: 'h',
        fields: [
          ['f', '1'],
          ['g', '2'],
          ['f', '3'],
        ],
      },
      2,
    )
    expect(plain(h)).toEqual({ h: { f: '3', g: '2' } })
    expect(fits(h, hget('h', 'f'), '3')).toBe(true)
    expect(
      fits(h, { op: 'hgetall', key: 'h' }, [
        ['g', '2'],
        ['f', '3'],
      ]),
    ).toBe(true) // any order
    expect(fits(h, { op: 'hgetall', key: 'h' }, [['g', '2']])).toBe(false)
    expect(fits(h, { op: 'hlen', key: 'h' }, 2)).toBe(true)
    expect(fits(h, { op: 'hexists', key: 'h', field: 'x' }, 0)).toBe(true)
    expect(plain(after(h, { op: 'hincrby', key: 'h', field: 'g', by: 5 }, 7))).toEqual({
      h: { f: '3', g: '7' },
    })
    expect(plain(after(h, { op: 'hdel', key: 'h', fields: ['f', 'g', 'x'] }, 2))).toEqual({})
    for (const input of [
      get('h'),
      incr('h'),
      append('h', 'x'),
      { op: 'strlen', key: 'h' } as const,
    ])
      expect(fits(h, input, error('WRONGTYPE Operation against a key'))).toBe(true)
    expect(fits(h, get('h'), error('ERR something else'))).toBe(false) // the code is compared
    expect(fits(h, mget('h'), [null])).toBe(true)
    expect(fits(state({ s: 'v' }), hget('s', 'f'), error('WRONGTYPE x'))).toBe(true)
    expect(plain(after(h, set('h', 'v'), 'OK'))).toEqual({ h: 'v' })
  })

  it('a transaction: one atomic step, one output per command, errors in place', () => {
    const before = state({ s: 'text' })
    const input = multi(incr('n'), incr('s'), get('n'))
    expect(plain(after(before, input, [1, error('ERR not an integer'), '1']))).toEqual({
      s: 'text',
      n: '1',
    })
    expect(fits(before, input, [1, 1, '1'])).toBe(false)
    expect(fits(before, input, [1, error('ERR')])).toBe(false)
  })

  it('explains a rejected step with the values it read', () => {
    const stepped = model.step(state({ x: 'a' }), get('x'), 'b')
    expect(stepped.ok).toBe(false)
    expect(!stepped.ok && stepped.reason).toBe(
      'GET x returned "b", but with x = "a" it returns "a"',
    )
    const torn = model.step(state({ a: '1' }), mget('a', 'b'), ['1', '1'])
    expect(!torn.ok && torn.reason).toBe(
      'MGET a b returned ["1", "1"], but with a = "1", b = nil it returns ["1", nil]',
    )
  })

  it('never mutates the state it is given', () => {
    const before = state({ a: '1' })
    applyKv(before, multi(set('a', '2'), del('a'), hset('a', 'f', 'v')))
    expect(plain(before)).toEqual({ a: '1' })
  })
})

describe('check with kvModel', () => {
  it('accepts concurrent overlapping commands on several keys', () => {
    const history = [
      done(1, set('x', 'a'), 0, 10, 'OK'),
      done(2, set('x', 'b'), 1, 9, 'OK'),
      done(3, get('x'), 2, 3, 'b'),
      done(3, get('x'), 4, 12, 'a'),
      done(4, incr('n'), 0, 20, 2),
      done(5, incr('n'), 5, 6, 1),
      done(6, get('n'), 7, 8, '1'),
      done(6, append('s', 'x'), 9, 11, 1),
      done(1, del('x'), 13, 14, 1),
      done(2, get('x'), 15, 16, null),
    ]
    const result = check(kvModel(), history)
    expect(result.result).toBe('ok')
    expect(result.partitions).toHaveLength(3)
  })

  it('accepts an unknown outcome that took effect, and one that did not', () => {
    const tookEffect = [
      done(1, set('x', 'a'), 0, 1, 'OK'),
      lost(2, set('x', 'b'), 2),
      done(3, get('x'), 3, 4, 'a'),
      done(3, get('x'), 50, 51, 'b'), // applied long after the client gave up
    ]
    expect(check(kvModel(), tookEffect).result).toBe('ok')
    const never = [
      done(1, set('x', 'a'), 0, 1, 'OK'),
      lost(2, incr('x'), 2),
      done(3, get('x'), 50, 51, 'a'),
    ]
    expect(check(kvModel(), never).result).toBe('ok')
    const maybe = [
      done(1, set('n', '5'), 0, 1, 'OK'),
      lost(2, incr('n'), 2),
      done(3, get('n'), 10, 11, '6'),
    ]
    expect(check(kvModel(), maybe).result).toBe('ok')
    const linearization = check(kvModel(), maybe).partitions[0]!.linearization!
    expect(linearization).toEqual([maybe[0], maybe[1], maybe[2]])
  })

  it('combines unknown outcomes: several may have happened, in any order, or some never', () => {
    const appended = [
      lost(1, set('x', 'a'), 0),
      lost(2, append('x', 'b'), 1),
      done(3, get('x'), 10, 11, 'ab'), // both, SET first
    ]
    expect(check(kvModel(), appended).result).toBe('ok')
    expect(check(kvModel(), [...appended.slice(0, 2), done(3, get('x'), 10, 11, 'a')]).result).toBe(
      'ok', // the APPEND first (or never)
    )
    expect(
      check(kvModel(), [...appended.slice(0, 2), done(3, get('x'), 10, 11, 'ba')]).result,
    ).toBe('illegal')
    const counters = [lost(1, incr('n'), 0), lost(2, incr('n'), 1), lost(3, incr('n'), 2)]
    for (const [seen, verdict] of [
      ['1', 'ok'],
      ['3', 'ok'],
      ['4', 'illegal'],
    ] as const)
      expect(check(kvModel(), [...counters, done(4, get('n'), 10, 11, seen)]).result).toBe(verdict)
    // Each happens once: "b", then "a", then "b" again cannot be.
    const sets = [lost(1, set('x', 'a'), 0), lost(2, set('x', 'b'), 1)]
    expect(
      check(kvModel(), [...sets, done(3, get('x'), 10, 11, 'b'), done(3, get('x'), 12, 13, 'a')])
        .result,
    ).toBe('ok')
    expect(
      check(kvModel(), [
        ...sets,
        done(3, get('x'), 10, 11, 'b'),
        done(3, get('x'), 12, 13, 'a'),
        done(3, get('x'), 14, 15, 'b'),
      ]).result,
    ).toBe('illegal')
  })

  it('finds an unknown outcome whose effect shows only after much else, on a joined part', () => {
    const history: KvOperation[] = [lost(1, set('a', 'v'), 0)]
    for (let i = 0; i < 30; i++)
      history.push(done(2, set('b', `${i}`), 10 + 2 * i, 11 + 2 * i, 'OK'))
    history.push(done(3, mget('a', 'b'), 100, 101, ['v', '29']))
    const result = check(kvModel(), history)
    expect(result.result).toBe('ok')
    expect(result.partitions).toHaveLength(1)
    history.push(done(3, mget('a', 'b'), 102, 103, [null, '29']))
    expect(check(kvModel(), history).result).toBe('illegal')
  })

  it('takes a transaction with an unknown outcome whole or not at all', () => {
    const history = [
      lost(1, multi(set('a', '1'), set('b', '1')), 0),
      done(2, get('a'), 10, 11, '1'),
      done(2, get('b'), 12, 13, null),
    ]
    expect(check(kvModel(), history).result).toBe('illegal')
    expect(check(kvModel(), [...history.slice(0, 2), done(2, get('b'), 12, 13, '1')]).result).toBe(
      'ok',
    )
  })

  for (const [name, history] of Object.entries(broken)) {
    it(`rejects ${name}`, () => {
      const result = check(kvModel(), history)
      expect(result.result).toBe('illegal')
      expect(result.counterexample!.text).toMatch(/cannot be linearized next/)
    })
  }

  it('rejects them because of what the clients saw: a model that accepts any output passes them all', () => {
    const gullible: Model<KvState, KvInput, KvOutput> = {
      ...model,
      step: (value, input) => ({ ok: true, state: applyKv(value, input).state }),
    }
    for (const history of Object.values(broken)) expect(check(gullible, history).result).toBe('ok')
  })

  it('keeps multi-key operations whole: splitting them by key would accept the torn ones', () => {
    // The unsound partition: each operation filed under its first key only.
    const naive: Model<KvState, KvInput, KvOutput> = {
      ...model,
      partition: partitionBy((operation) => {
        const input = operation.input
        return input.op === 'mset' ? input.entries[0]![0] : 'key' in input ? input.key : 'other'
      }),
    }
    const torn = broken['a torn MSET: one key new, the other old, after both were read new']!
    expect(check(naive, torn).result).toBe('ok')
    const result = check(kvModel(), torn)
    expect(result.result).toBe('illegal')
    expect(result.partitions).toHaveLength(1)
  })

  it('joins the parts that a multi-key operation connects, and only those', () => {
    const history = [
      done(1, set('a', '1'), 0, 1, 'OK'),
      done(1, set('b', '1'), 0, 1, 'OK'),
      done(1, set('c', '1'), 0, 1, 'OK'),
      done(2, mget('a', 'b'), 2, 3, ['1', '1']),
      done(3, rename('c', 'd'), 4, 5, 'OK'),
      done(4, get('e'), 6, 7, null),
    ]
    const result = check(kvModel(), history)
    expect(result.result).toBe('ok')
    expect(result.partitions.map((part) => part.operations.length)).toEqual([3, 2, 1])
  })

  it('reports the broken key among healthy ones', () => {
    const history = [
      done(1, set('a', '1'), 0, 1, 'OK'),
      done(1, set('b', '1'), 2, 3, 'OK'),
      done(2, get('b'), 4, 5, null),
      done(2, get('a'), 6, 7, '1'),
    ]
    const result = check(kvModel(), history)
    expect(result.partitions.map((part) => part.result)).toEqual(['ok', 'illegal'])
    expect(result.counterexample!.partition).toBe(1)
    expect(result.counterexample!.text).toContain('partition 2 of 2')
    expect(result.counterexample!.reason).toBe(
      'GET b returned nil, but with b = "1" it returns "1"',
    )
  })
})
