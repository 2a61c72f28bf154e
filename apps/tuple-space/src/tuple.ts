/**
 * Tuples, templates and matching — pure functions, the same at every replica.
 *
 * A tuple is a flat array of 1–64 values: strings, finite numbers, booleans, `null` and bytes
 * (`Uint8Array`). A template has the same shape, except that any field may be a **formal** —
 * `{ formal: type }`, made with the `formal` helpers — which matches any value of its type.
 * A template matches a tuple of the same arity whose every field matches: an actual value
 * matches an equal value (bytes byte by byte; numbers by `===`, so `-0` is stored as `0`), a
 * formal a value of its type (`int` is a safe integer, `number` any number, `any` anything).
 */
import { TupleSpaceError } from './errors.js'

/** One field of a tuple. */
export type Value = string | number | boolean | null | Uint8Array
/** A tuple: a non-empty array of values. */
export type Tuple = readonly Value[]

export const FORMAL_TYPES = ['string', 'number', 'int', 'boolean', 'bytes', 'any'] as const
/** What a formal matches: `number` is any number, `int` a safe integer, `any` anything. */
export type FormalType = (typeof FORMAL_TYPES)[number]

/** A typed formal of a template: matches any value of its type. */
export interface Formal<T extends FormalType = FormalType> {
  readonly formal: T
}
export type TemplateField = Value | Formal
/** A template: values and formals. */
export type Template = readonly TemplateField[]

function makeFormal<T extends FormalType>(type: T): Formal<T> {
  return Object.freeze({ formal: type })
}

/**
 * The formals, one per type: `['task', formal.int, formal.any]` matches `['task', 7, 'x']`.
 */
export const formal: { readonly [T in FormalType]: Formal<T> } = Object.freeze({
  string: makeFormal('string'),
  number: makeFormal('number'),
  int: makeFormal('int'),
  boolean: makeFormal('boolean'),
  bytes: makeFormal('bytes'),
  any: makeFormal('any'),
})

type TypeOfFormal<F extends FormalType> = F extends 'string'
  ? string
  : F extends 'number' | 'int'
    ? number
    : F extends 'boolean'
      ? boolean
      : F extends 'bytes'
        ? Uint8Array
        : Value

/** The type of a tuple that `T` matches: formals become their types, actual values stay. */
export type Matched<T extends Template> = {
  -readonly [K in keyof T]: T[K] extends Formal<infer F> ? TypeOfFormal<F> : T[K]
}

/** Most fields in a tuple or template. */
export const MAX_ARITY = 64
/** Most bytes of values in one tuple or template (string bytes, byte arrays, 9 per field). */
export const MAX_TUPLE_BYTES = 32 * 1024

export function isFormal(field: unknown): field is Formal {
  return (
    typeof field === 'object' &&
    field !== null &&
    !(field instanceof Uint8Array) &&
    typeof (field as { formal?: unknown }).formal === 'string' &&
    (FORMAL_TYPES as readonly string[]).includes((field as { formal: string }).formal)
  )
}

function describe(value: unknown): string {
  if (value === undefined) return 'undefined'
  if (typeof value === 'number') return String(value)
  if (typeof value === 'string')
    return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)
  if (Array.isArray(value)) return 'an array'
  if (typeof value === 'object' && value !== null) return 'an object'
  return typeof value
}

type Checked = { readonly value: Value } | { readonly reason: string }

/** The value as stored, or a reason it is none. */
function checkValue(value: unknown): Checked {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return { value }
    case 'number':
      if (!Number.isFinite(value)) return { reason: `${value} is not a finite number` }
      return { value: value === 0 ? 0 : value } // -0 is stored as 0: equal values, one encoding
    case 'object':
      if (value === null) return { value: null }
      if (value instanceof Uint8Array) return { value }
      break
  }
  return {
    reason: `${describe(value)} is not a tuple value (string, finite number, boolean, null or bytes)`,
  }
}

function sizeOf(value: Value): number {
  if (typeof value === 'string') return 9 + value.length * 3
  if (value instanceof Uint8Array) return 9 + value.byteLength
  return 9
}

function checkShape(what: 'tuple' | 'template', fields: unknown): asserts fields is unknown[] {
  const code = what === 'tuple' ? 'BAD_TUPLE' : 'BAD_TEMPLATE'
  if (!Array.isArray(fields))
    throw new TupleSpaceError(code, `a ${what} is an array of fields, not ${describe(fields)}`)
  if (fields.length === 0 || fields.length > MAX_ARITY)
    throw new TupleSpaceError(
      code,
      `a ${what} has 1 to ${MAX_ARITY} fields, this one ${fields.length}`,
    )
}

/**
 * The tuple as stored (a copy; `-0` as `0`), or `TupleSpaceError('BAD_TUPLE')` naming the
 * field at fault (`TOO_LARGE` past `MAX_TUPLE_BYTES`). Formals are not allowed in a tuple.
 */
export function validateTuple(tuple: unknown): Tuple {
  checkShape('tuple', tuple)
  const out: Value[] = []
  let bytes = 0
  for (let i = 0; i < tuple.length; i++) {
    const field = tuple[i]
    if (isFormal(field))
      throw new TupleSpaceError(
        'BAD_TUPLE',
        `field ${i}: a formal (${field.formal}) belongs in a template, not in a tuple`,
      )
    const v = checkValue(field)
    if ('reason' in v) throw new TupleSpaceError('BAD_TUPLE', `field ${i}: ${v.reason}`)
    bytes += sizeOf(v.value)
    out.push(v.value)
  }
  if (bytes > MAX_TUPLE_BYTES)
    throw new TupleSpaceError(
      'TOO_LARGE',
      `the tuple holds about ${bytes} bytes of values; at most ${MAX_TUPLE_BYTES}`,
    )
  return out
}

/**
 * The template as stored (formals as the canonical `formal.*` objects), or
 * `TupleSpaceError('BAD_TEMPLATE')` naming the field at fault — an object that is no formal,
 * a formal of an unknown type, a value that is no tuple value.
 */
export function validateTemplate(template: unknown): Template {
  checkShape('template', template)
  const out: TemplateField[] = []
  let bytes = 0
  for (let i = 0; i < template.length; i++) {
    const field = template[i]
    if (
      typeof field === 'object' &&
      field !== null &&
      !(field instanceof Uint8Array) &&
      !Array.isArray(field)
    ) {
      const keys = Object.keys(field)
      const type = (field as { formal?: unknown }).formal
      if (keys.length !== 1 || keys[0] !== 'formal')
        throw new TupleSpaceError(
          'BAD_TEMPLATE',
          `field ${i}: an object in a template is a formal { formal: type }, with no other keys`,
        )
      if (typeof type !== 'string' || !(FORMAL_TYPES as readonly string[]).includes(type))
        throw new TupleSpaceError(
          'BAD_TEMPLATE',
          `field ${i}: formal type ${describe(type)} is not one of ${FORMAL_TYPES.join(', ')}`,
        )
      out.push(formal[type as FormalType])
      bytes += 9
      continue
    }
    const v = checkValue(field)
    if ('reason' in v) throw new TupleSpaceError('BAD_TEMPLATE', `field ${i}: ${v.reason}`)
    bytes += sizeOf(v.value)
    out.push(v.value)
  }
  if (bytes > MAX_TUPLE_BYTES)
    throw new TupleSpaceError(
      'TOO_LARGE',
      `the template holds about ${bytes} bytes of values; at most ${MAX_TUPLE_BYTES}`,
    )
  return out
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false
  return true
}

/** Whether a value is of a formal's type. */
export function ofType(type: FormalType, value: Value): boolean {
  switch (type) {
    case 'string':
      return typeof value === 'string'
    case 'number':
      return typeof value === 'number'
    case 'int':
      return Number.isSafeInteger(value)
    case 'boolean':
      return typeof value === 'boolean'
    case 'bytes':
      return value instanceof Uint8Array
    case 'any':
      return true
  }
}

/** Two values are equal: the same type and value (bytes byte by byte). */
export function valuesEqual(a: Value, b: Value): boolean {
  if (a instanceof Uint8Array) return b instanceof Uint8Array && bytesEqual(a, b)
  return a === b
}

/** Whether one field of a template matches one value. */
export function fieldMatches(field: TemplateField, value: Value): boolean {
  return isFormal(field) ? ofType(field.formal, value) : valuesEqual(field, value)
}

/** Same arity, every actual value equal, every formal of the right type. */
export function matches(template: Template, tuple: Tuple): boolean {
  if (template.length !== tuple.length) return false
  for (let i = 0; i < template.length; i++)
    if (!fieldMatches(template[i] as TemplateField, tuple[i] as Value)) return false
  return true
}

const TYPE_RANK = (v: Value): number =>
  v === null
    ? 0
    : typeof v === 'boolean'
      ? 1
      : typeof v === 'number'
        ? 2
        : typeof v === 'string'
          ? 3
          : 4

/**
 * A total order on values, the same everywhere: null < booleans < numbers < strings < bytes;
 * inside a type by value (strings by UTF-16 code units, bytes lexicographically, shorter
 * first on a common prefix).
 */
export function compareValues(a: Value, b: Value): number {
  const ra = TYPE_RANK(a)
  const rb = TYPE_RANK(b)
  if (ra !== rb) return ra - rb
  if (a instanceof Uint8Array && b instanceof Uint8Array) {
    const n = Math.min(a.byteLength, b.byteLength)
    for (let i = 0; i < n; i++) if (a[i] !== b[i]) return (a[i] as number) - (b[i] as number)
    return a.byteLength - b.byteLength
  }
  if (a === b) return 0
  return (a as string | number | boolean) < (b as string | number | boolean) ? -1 : 1
}

/** A total order on tuples: by arity, then field by field. */
export function compareTuples(a: Tuple, b: Tuple): number {
  if (a.length !== b.length) return a.length - b.length
  for (let i = 0; i < a.length; i++) {
    const c = compareValues(a[i] as Value, b[i] as Value)
    if (c !== 0) return c
  }
  return 0
}
