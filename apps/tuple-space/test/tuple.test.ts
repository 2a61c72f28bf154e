import { describe, expect, it } from 'vitest'
import { TupleSpaceError } from '../src/errors.js'
import {
  compareTuples,
  compareValues,
  FORMAL_TYPES,
  formal,
  isFormal,
  MAX_ARITY,
  matches,
  type Template,
  type Tuple,
  type Value,
  validateTemplate,
  validateTuple,
} from '../src/tuple.js'
import { randomTuple, rng } from './fixtures/random.js'

const codeOf = (f: () => unknown): string | undefined => {
  try {
    f()
  } catch (error) {
    expect(TupleSpaceError.isInstance(error)).toBe(true)
    return (error as TupleSpaceError).code
  }
  return undefined
}
const messageOf = (f: () => unknown): string => {
  try {
    f()
  } catch (error) {
    return (error as Error).message
  }
  return ''
}

describe('formals', () => {
  it('one frozen formal per type, recognised by isFormal', () => {
    for (const t of FORMAL_TYPES) {
      expect(formal[t]).toEqual({ formal: t })
      expect(Object.isFrozen(formal[t])).toBe(true)
      expect(isFormal(formal[t])).toBe(true)
    }
    expect(isFormal({ formal: 'float' })).toBe(false)
    expect(isFormal(new Uint8Array([1]))).toBe(false)
    expect(isFormal(null)).toBe(false)
  })
})

describe('validateTuple', () => {
  it('accepts strings, finite numbers, booleans, null and bytes; stores -0 as 0', () => {
    const bytes = new Uint8Array([1, 2])
    const t = validateTuple(['a', 1, -2.5, true, null, bytes, -0])
    expect(t).toEqual(['a', 1, -2.5, true, null, bytes, 0])
    expect(Object.is(t[6], 0)).toBe(true)
    expect(validateTuple(Array(MAX_ARITY).fill(1))).toHaveLength(MAX_ARITY)
  })

  it('refuses what is no tuple, naming the field', () => {
    expect(codeOf(() => validateTuple('x'))).toBe('BAD_TUPLE')
    expect(codeOf(() => validateTuple([]))).toBe('BAD_TUPLE')
    expect(codeOf(() => validateTuple(Array(MAX_ARITY + 1).fill(1)))).toBe('BAD_TUPLE')
    expect(codeOf(() => validateTuple(['a', undefined]))).toBe('BAD_TUPLE')
    expect(messageOf(() => validateTuple(['a', undefined]))).toMatch(/^field 1: undefined/)
    expect(codeOf(() => validateTuple([Number.NaN]))).toBe('BAD_TUPLE')
    expect(messageOf(() => validateTuple([1, Infinity]))).toMatch(
      /field 1: Infinity is not a finite/,
    )
    expect(codeOf(() => validateTuple([{ a: 1 }]))).toBe('BAD_TUPLE')
    expect(codeOf(() => validateTuple([[1]]))).toBe('BAD_TUPLE')
    expect(codeOf(() => validateTuple([10n]))).toBe('BAD_TUPLE')
    expect(messageOf(() => validateTuple(['a', formal.int]))).toMatch(/field 1: a formal \(int\)/)
    expect(codeOf(() => validateTuple(['x'.repeat(40_000)]))).toBe('TOO_LARGE')
    expect(codeOf(() => validateTuple([new Uint8Array(40_000)]))).toBe('TOO_LARGE')
  })
})

describe('validateTemplate', () => {
  it('takes values and formals, giving back the canonical formal objects', () => {
    const t = validateTemplate(['task', { formal: 'int' }, formal.any, null])
    expect(t[1]).toBe(formal.int)
    expect(t).toEqual(['task', formal.int, formal.any, null])
  })

  it('refuses objects that are no formal, unknown types, and non-values', () => {
    expect(codeOf(() => validateTemplate({}))).toBe('BAD_TEMPLATE')
    expect(codeOf(() => validateTemplate([]))).toBe('BAD_TEMPLATE')
    expect(messageOf(() => validateTemplate(['a', { formal: 'float' }]))).toMatch(
      /field 1: formal type "float" is not one of string, number, int, boolean, bytes, any/,
    )
    expect(codeOf(() => validateTemplate([{ formal: 'int', extra: 1 }]))).toBe('BAD_TEMPLATE')
    expect(codeOf(() => validateTemplate([{ type: 'int' }]))).toBe('BAD_TEMPLATE')
    expect(codeOf(() => validateTemplate([[formal.int]]))).toBe('BAD_TEMPLATE')
    expect(codeOf(() => validateTemplate([Number.NaN]))).toBe('BAD_TEMPLATE')
    expect(codeOf(() => validateTemplate([() => 1]))).toBe('BAD_TEMPLATE')
  })
})

describe('matching', () => {
  const b = (...x: number[]) => new Uint8Array(x)
  const cases: [Template, Tuple, boolean][] = [
    [['a'], ['a'], true],
    [['a'], ['a', 1], false],
    [['a', 1], ['a', 1], true],
    [['a', 1], ['a', '1'], false],
    [[true], [1], false],
    [[null], [null], true],
    [[null], [0], false],
    [[b(1, 2)], [b(1, 2)], true],
    [[b(1, 2)], [b(1, 3)], false],
    [[b(1, 2)], [b(1, 2, 3)], false],
    [[formal.int], [3], true],
    [[formal.int], [3.5], false],
    [[formal.int], [2 ** 60], false],
    [[formal.number], [3.5], true],
    [[formal.number], ['3'], false],
    [[formal.string], ['x'], true],
    [[formal.string], [null], false],
    [[formal.boolean], [false], true],
    [[formal.boolean], [0], false],
    [[formal.bytes], [b()], true],
    [[formal.bytes], ['ab'], false],
    [[formal.any], [null], true],
    [[formal.any, 'x'], [b(9), 'x'], true],
    [[formal.any, 'x'], [b(9), 'y'], false],
  ]
  it.each(cases)('%j ~ %j is %s', (template, tuple, expected) => {
    expect(matches(template, tuple)).toBe(expected)
  })

  it('a tuple matches itself and every template made from it by turning fields into formals of their type', () => {
    const random = rng(7)
    const typeOf = (v: Value) =>
      v === null
        ? 'any'
        : typeof v === 'boolean'
          ? 'boolean'
          : typeof v === 'string'
            ? 'string'
            : v instanceof Uint8Array
              ? 'bytes'
              : Number.isSafeInteger(v)
                ? 'int'
                : 'number'
    for (let i = 0; i < 500; i++) {
      const tuple = validateTuple(randomTuple(random))
      expect(matches(tuple, tuple)).toBe(true)
      const template = tuple.map((v) =>
        random() < 0.5 ? v : random() < 0.3 ? formal.any : formal[typeOf(v)],
      )
      expect(matches(template, tuple)).toBe(true)
      // Change one actual field to another value: no match.
      const at = template.findIndex((f) => !isFormal(f))
      if (at >= 0) {
        const other = [...template]
        other[at] = typeof template[at] === 'string' ? `${template[at] as string}!` : 'other'
        expect(matches(other, tuple)).toBe(false)
      }
    }
  })
})

describe('the order of values and tuples', () => {
  it('is total and consistent: antisymmetric, transitive, 0 exactly for equal values', () => {
    const random = rng(3)
    const tuples = Array.from({ length: 120 }, () => validateTuple(randomTuple(random, 3)))
    for (const a of tuples)
      for (const b of tuples) {
        const ab = compareTuples(a, b)
        expect(Math.sign(ab) + Math.sign(compareTuples(b, a))).toBe(0)
        expect(ab === 0).toBe(matches(a, b))
      }
    const sorted = [...tuples].sort(compareTuples)
    for (let i = 1; i < sorted.length; i++)
      for (let j = i; j < Math.min(sorted.length, i + 5); j++)
        expect(compareTuples(sorted[i - 1]!, sorted[j]!)).toBeLessThanOrEqual(0)
    expect(compareValues(null, false)).toBeLessThan(0)
    expect(compareValues(true, 0)).toBeLessThan(0)
    expect(compareValues(99, 'a')).toBeLessThan(0)
    expect(compareValues('z', new Uint8Array())).toBeLessThan(0)
    expect(compareValues(new Uint8Array([1]), new Uint8Array([1, 0]))).toBeLessThan(0)
  })
})
