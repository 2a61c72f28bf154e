/**
 * An independent sequential Redis for the tests (strings, hashes, the multi-key commands and
 * MULTI/EXEC; small numbers): written apart from src/models/kv.ts, in another style (a
 * mutable store, copied whole per command), so the checker's model is compared with something
 * it did not share code with.
 */
import type { KvCommand, KvInput, KvOutput } from '../../src/index.js'

type Entry =
  | { readonly type: 'string'; value: string }
  | { readonly type: 'hash'; fields: Map<string, string> }
export type Store = ReadonlyMap<string, Entry>

/** The WRONGTYPE reply; a class so that `instanceof` tells it from a value. */
class Wrong {
  readonly error = 'WRONGTYPE Operation against a key holding the wrong kind of value'
}
const WRONG = new Wrong()
const NOT_INT = { error: 'ERR value is not an integer or out of range' }

function copy(store: Store): Map<string, Entry> {
  const result = new Map<string, Entry>()
  for (const [key, entry] of store)
    result.set(
      key,
      entry.type === 'string'
        ? { type: 'string', value: entry.value }
        : { type: 'hash', fields: new Map(entry.fields) },
    )
  return result
}

const bytes = (value: string) => Buffer.byteLength(value, 'utf8')
const asInteger = (text: string): number | undefined =>
  /^(0|-?[1-9]\d{0,14})$/.test(text) ? Number(text) : undefined

export function redis(store: Store, input: KvInput): { output: KvOutput; store: Store } {
  const next = copy(store)
  if (input.op === 'multi') return { output: input.commands.map((c) => one(next, c)), store: next }
  return { output: one(next, input), store: next }
}

function one(s: Map<string, Entry>, c: KvCommand): KvOutput {
  const str = (key: string): string | undefined | Wrong => {
    const entry = s.get(key)
    return entry === undefined ? undefined : entry.type === 'string' ? entry.value : WRONG
  }
  const hash = (key: string): Map<string, string> | undefined | Wrong => {
    const entry = s.get(key)
    return entry === undefined ? undefined : entry.type === 'hash' ? entry.fields : WRONG
  }
  const put = (key: string, value: string) => s.set(key, { type: 'string', value })
  switch (c.op) {
    case 'get': {
      const v = str(c.key)
      return v ?? null
    }
    case 'set': {
      const exists = s.has(c.key)
      const old = str(c.key)
      if (c.get === true && old instanceof Wrong) return WRONG
      const skip = (c.condition === 'nx' && exists) || (c.condition === 'xx' && !exists)
      if (!skip) put(c.key, c.value)
      if (c.get === true) return (old as string | undefined) ?? null
      return skip ? null : 'OK'
    }
    case 'setnx':
      if (s.has(c.key)) return 0
      put(c.key, c.value)
      return 1
    case 'getset':
    case 'getdel': {
      const old = str(c.key)
      if (old instanceof Wrong) return WRONG
      if (c.op === 'getset') put(c.key, c.value)
      else s.delete(c.key)
      return old ?? null
    }
    case 'del': {
      let n = 0
      for (const key of c.keys ?? [c.key]) if (s.delete(key)) n++
      return n
    }
    case 'exists':
      return (c.keys ?? [c.key]).filter((key) => s.has(key)).length
    case 'incr': {
      const old = str(c.key)
      if (old instanceof Wrong) return WRONG
      const n = old === undefined ? 0 : asInteger(old)
      if (n === undefined) return NOT_INT
      put(c.key, String(n + (c.by ?? 1)))
      return n + (c.by ?? 1)
    }
    case 'append': {
      const old = str(c.key)
      if (old instanceof Wrong) return WRONG
      put(c.key, (old ?? '') + c.value)
      return bytes((old ?? '') + c.value)
    }
    case 'strlen': {
      const v = str(c.key)
      if (v instanceof Wrong) return WRONG
      return v === undefined ? 0 : bytes(v)
    }
    case 'mget':
      return c.keys.map((key) => {
        const v = str(key)
        return typeof v === 'string' ? v : null
      })
    case 'mset':
      for (const [key, value] of c.entries) put(key, value)
      return 'OK'
    case 'rename': {
      const entry = s.get(c.key)
      if (entry === undefined) return { error: 'ERR no such key' }
      s.delete(c.key)
      s.set(c.to, entry)
      return 'OK'
    }
    case 'hset': {
      const h = hash(c.key)
      if (h instanceof Wrong) return WRONG
      const fields = h ?? new Map<string, string>()
      let added = 0
      for (const [field, value] of c.fields) {
        if (!fields.has(field)) added++
        fields.set(field, value)
      }
      s.set(c.key, { type: 'hash', fields })
      return added
    }
    case 'hget': {
      const h = hash(c.key)
      if (h instanceof Wrong) return WRONG
      return h?.get(c.field) ?? null
    }
    case 'hdel': {
      const h = hash(c.key)
      if (h instanceof Wrong) return WRONG
      if (h === undefined) return 0
      let n = 0
      for (const field of c.fields) if (h.delete(field)) n++
      if (h.size === 0) s.delete(c.key)
      return n
    }
    case 'hexists': {
      const h = hash(c.key)
      if (h instanceof Wrong) return WRONG
      return h?.has(c.field) ? 1 : 0
    }
    case 'hlen': {
      const h = hash(c.key)
      if (h instanceof Wrong) return WRONG
      return h?.size ?? 0
    }
    case 'hincrby': {
      const h = hash(c.key)
      if (h instanceof Wrong) return WRONG
      const fields = h ?? new Map<string, string>()
      const old = fields.get(c.field)
      const n = old === undefined ? 0 : asInteger(old)
      if (n === undefined) return { error: 'ERR hash value is not an integer' }
      fields.set(c.field, String(n + c.by))
      s.set(c.key, { type: 'hash', fields })
      return n + c.by
    }
    case 'hgetall': {
      const h = hash(c.key)
      if (h instanceof Wrong) return WRONG
      return [...(h ?? new Map<string, string>())].map(([f, v]) => [f, v])
    }
  }
}

/** The commands that leave the store as it is. */
export const READ_ONLY: ReadonlySet<string> = new Set([
  'get',
  'mget',
  'exists',
  'strlen',
  'hget',
  'hexists',
  'hlen',
  'hgetall',
])
export const readOnly = (input: KvInput): boolean =>
  input.op === 'multi' ? input.commands.every((c) => READ_ONLY.has(c.op)) : READ_ONLY.has(input.op)

/** The keys a command names. */
export function keysOf(input: KvInput): string[] {
  if (input.op === 'multi') return input.commands.flatMap(keysOf)
  if (input.op === 'mget') return [...input.keys]
  if (input.op === 'mset') return input.entries.map(([key]) => key)
  if (input.op === 'rename') return [input.key, input.to]
  if ((input.op === 'del' || input.op === 'exists') && input.keys !== undefined)
    return [...input.keys]
  return [(input as { key: string }).key]
}

/**
 * Whether a client seeing `actual` agrees with the spec's `expected` for `input`: errors by
 * their first word, HGETALL pairs in any order, MGET and EXEC item by item.
 */
export function sameOutput(
  input: KvInput,
  expected: KvOutput,
  actual: KvOutput | undefined,
): boolean {
  const isError = (value: unknown): value is { error: string } =>
    typeof value === 'object' && value !== null && !Array.isArray(value)
  if (isError(expected))
    return isError(actual) && actual.error.split(' ')[0] === expected.error.split(' ')[0]
  if (input.op === 'multi') {
    if (!Array.isArray(expected) || !Array.isArray(actual)) return false
    return (
      actual.length === expected.length &&
      input.commands.every((command, index) => sameOutput(command, expected[index]!, actual[index]))
    )
  }
  if (input.op === 'hgetall') {
    if (!Array.isArray(expected) || !Array.isArray(actual)) return false
    const canonical = (pairs: readonly KvOutput[]) =>
      pairs
        .map((pair) => JSON.stringify(pair))
        .sort()
        .join()
    return actual.length === expected.length && canonical(expected) === canonical(actual)
  }
  if (Array.isArray(expected))
    return (
      Array.isArray(actual) &&
      actual.length === expected.length &&
      expected.every((item, index) => item === actual[index])
    )
  return expected === actual
}
