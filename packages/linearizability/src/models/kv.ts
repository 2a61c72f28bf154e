/**
 * A Redis-like key-value store as a model: string and hash values, the commands a chaos test
 * issues (single-key, multi-key and MULTI/EXEC transactions), outputs as a client (ioredis,
 * node-redis) returns them, error replies as `{ error: message }`. No expiry.
 *
 * The history is partitioned by key, soundly: the keys that one operation touches together
 * (MGET, MSET, DEL and EXISTS of several keys, RENAME, a transaction) are one part, so no
 * operation is ever split — a history whose MSETs touch every key is checked as one part.
 * Invariant: two operations in different parts touch disjoint sets of keys.
 */

import { show } from '../history.js'
import type { Model, Operation, StepResult } from '../model.js'
import { partitionByKeys } from '../partition.js'
import { fitsInt64, redisInteger, utf8Length } from './redis-strings.js'

/**
 * One command, as the client sent it. Outputs (what the client saw):
 *
 * - `get`, `getset`, `getdel`, `hget`, and `set` with `get: true` → a string, or `null` (nil);
 * - `set` → `'OK'`, or `null` when `condition` (`'nx'`: only if absent, `'xx'`: only if
 *   present) kept it from applying;
 * - `setnx`, `del`, `exists`, `append`, `strlen`, `hset`, `hdel`, `hexists`, `hlen`, `incr`,
 *   `hincrby` → an integer (`number` or `bigint`); `incr` takes `by` (default 1; negative for
 *   DECR/DECRBY);
 * - `mget` → an array of strings and `null`s, one per key; `mset`, `rename` → `'OK'`;
 * - `hgetall` → an array of `[field, value]` pairs, in any order (`Object.entries(reply)`);
 * - `multi` (a MULTI … EXEC transaction, applied atomically) → the array EXEC returned, one
 *   output per command;
 * - any command that can fail on the data (WRONGTYPE, not an integer, overflow, no such key)
 *   → `{ error: message }`; only the message's first word (`WRONGTYPE`, `ERR`) is compared.
 *
 * Errors of the system rather than of the command (-CLUSTERDOWN, -READONLY, EXECABORT, a
 * timeout) are not outputs: the operation either definitely did not happen (leave it out, or
 * `fail()` it in the recorder) or its outcome is unknown.
 */
export type KvInput = KvCommand | { readonly op: 'multi'; readonly commands: readonly KvCommand[] }

/** A command that can be queued in a transaction (anything but `multi`). */
export type KvCommand =
  | { readonly op: 'get'; readonly key: string }
  | {
      readonly op: 'set'
      readonly key: string
      readonly value: string
      readonly condition?: 'nx' | 'xx'
      readonly get?: boolean
    }
  | { readonly op: 'setnx'; readonly key: string; readonly value: string }
  | { readonly op: 'getset'; readonly key: string; readonly value: string }
  | { readonly op: 'getdel'; readonly key: string }
  | { readonly op: 'del'; readonly key: string; readonly keys?: never }
  | { readonly op: 'del'; readonly keys: readonly string[]; readonly key?: never }
  | { readonly op: 'exists'; readonly key: string; readonly keys?: never }
  | { readonly op: 'exists'; readonly keys: readonly string[]; readonly key?: never }
  | { readonly op: 'incr'; readonly key: string; readonly by?: number }
  | { readonly op: 'append'; readonly key: string; readonly value: string }
  | { readonly op: 'strlen'; readonly key: string }
  | { readonly op: 'mget'; readonly keys: readonly string[] }
  | { readonly op: 'mset'; readonly entries: readonly (readonly [string, string])[] }
  | { readonly op: 'rename'; readonly key: string; readonly to: string }
  | {
      readonly op: 'hset'
      readonly key: string
      readonly fields: readonly (readonly [string, string])[]
    }
  | { readonly op: 'hget'; readonly key: string; readonly field: string }
  | { readonly op: 'hdel'; readonly key: string; readonly fields: readonly string[] }
  | { readonly op: 'hexists'; readonly key: string; readonly field: string }
  | { readonly op: 'hlen'; readonly key: string }
  | { readonly op: 'hincrby'; readonly key: string; readonly field: string; readonly by: number }
  | { readonly op: 'hgetall'; readonly key: string }

/** An error reply (`-WRONGTYPE …`, `-ERR …`): ioredis's `ReplyError` as `{ error: e.message }`. */
export interface KvError {
  readonly error: string
}

/** What a client saw: a bulk string or nil, `'OK'`, an integer, an error, or an array of them. */
export type KvOutput = string | number | bigint | null | KvError | readonly KvOutput[]

export type KvOperation = Operation<KvInput, KvOutput>

/** A hash: field → value. */
export type KvHash = ReadonlyMap<string, string>

/** What a key holds. */
export type KvValue = string | KvHash

/** The state of one part: the keys that exist, and what they hold (absent: does not exist). */
export type KvState = ReadonlyMap<string, KvValue>

/** What the command returns from a state, as the model computes it. */
type Reply =
  | { readonly kind: 'bulk'; readonly value: string | null }
  | { readonly kind: 'status' }
  | { readonly kind: 'integer'; readonly value: bigint }
  | { readonly kind: 'error'; readonly message: string }
  | { readonly kind: 'array'; readonly items: readonly Reply[] }
  | { readonly kind: 'pairs'; readonly entries: readonly (readonly [string, string])[] }

const WRONGTYPE: Reply = {
  kind: 'error',
  message: 'WRONGTYPE Operation against a key holding the wrong kind of value',
}
const NOT_INTEGER: Reply = { kind: 'error', message: 'ERR value is not an integer or out of range' }
const OVERFLOW: Reply = { kind: 'error', message: 'ERR increment or decrement would overflow' }
const HASH_NOT_INTEGER: Reply = { kind: 'error', message: 'ERR hash value is not an integer' }
const NO_SUCH_KEY: Reply = { kind: 'error', message: 'ERR no such key' }
const OK: Reply = { kind: 'status' }
const NIL: Reply = { kind: 'bulk', value: null }
const integer = (value: number | bigint): Reply => ({ kind: 'integer', value: BigInt(value) })

/** The commands that only read: the stale-read check treats these as local reads. */
export const kvReadOps: ReadonlySet<KvInput['op']> = new Set([
  'get',
  'strlen',
  'exists',
  'mget',
  'hget',
  'hexists',
  'hlen',
  'hgetall',
])

/** True when the command never changes the state (a transaction: when all of its commands). */
export function isKvRead(input: KvInput): boolean {
  return input.op === 'multi' ? input.commands.every(isKvRead) : kvReadOps.has(input.op)
}

/**
 * True when the operation leaves the state as it is wherever its output fits: a read; with an
 * unknown outcome only a read. A known output can say more — an error reply (every error of
 * these commands comes before any change), a SET NX or XX that did not apply, SETNX → 0,
 * DEL → 0, GETDEL → nil, HDEL → 0 — and a transaction whose commands all say so.
 */
export function kvReadOnly(input: KvInput, output: KvOutput | undefined, known: boolean): boolean {
  if (isKvRead(input)) return true
  if (!known) return false
  if (input.op === 'multi')
    return (
      Array.isArray(output) &&
      output.length === input.commands.length &&
      input.commands.every((command, index) => kvReadOnly(command, output[index], true))
    )
  if (isKvError(output)) return true
  switch (input.op) {
    case 'set':
      if (input.condition === 'nx') return input.get === true ? output !== null : output === null
      if (input.condition === 'xx') return output === null
      return false
    case 'setnx':
    case 'del':
    case 'hdel':
      return output === 0 || output === 0n
    case 'getdel':
      return output === null
    case 'rename':
      return input.key === input.to
    default:
      return false
  }
}

/** The keys a command touches (reads or writes), in the order it names them. */
export function kvKeys(input: KvInput): readonly string[] {
  switch (input.op) {
    case 'multi':
      return input.commands.flatMap((command) => kvKeys(command))
    case 'mget':
      return input.keys
    case 'mset':
      return input.entries.map(([key]) => key)
    case 'del':
    case 'exists':
      return input.keys ?? [input.key]
    case 'rename':
      return [input.key, input.to]
    default:
      return [input.key]
  }
}

const keySets = new WeakMap<KvInput, ReadonlySet<string>>()

/** True when the two commands touch no key in common: they commute. */
export function kvIndependent(a: KvInput, b: KvInput): boolean {
  const keysOfA = keySetOf(a)
  for (const key of keySetOf(b)) if (keysOfA.has(key)) return false
  return true
}

function keySetOf(input: KvInput): ReadonlySet<string> {
  let keys = keySets.get(input)
  if (keys === undefined) keySets.set(input, (keys = new Set(kvKeys(input))))
  return keys
}

/** The keys a command may change. */
function writtenKeys(input: KvInput): readonly string[] {
  if (input.op === 'multi') return input.commands.flatMap(writtenKeys)
  return kvReadOps.has(input.op) ? [] : kvKeys(input)
}

/**
 * The keys a command leaves holding the same thing whatever they held, with a reply that does
 * not depend on them either (not DEL: it counts what it removed).
 */
function blindKeys(input: KvInput): readonly string[] {
  switch (input.op) {
    case 'set':
      // With GET it fails on a hash and replies the old value; with a condition it depends.
      return input.condition === undefined && input.get !== true ? [input.key] : []
    case 'mset':
      return kvKeys(input)
    default:
      return []
  }
}

/**
 * True when `later` leaves every key `earlier` may change as it would have without it, and
 * replies the same: `earlier` (an unknown outcome) then need not have happened.
 */
export function kvOverwrites(later: KvInput, earlier: KvInput): boolean {
  const blind = blindKeys(later)
  if (blind.length === 0) return false
  return writtenKeys(earlier).every((key) => blind.includes(key))
}

/** Copy-on-write over a state: reads never copy, the first write does. */
class Draft {
  private copy: Map<string, KvValue> | undefined
  constructor(private readonly base: KvState) {}
  get(key: string): KvValue | undefined {
    return (this.copy ?? this.base).get(key)
  }
  set(key: string, value: KvValue): void {
    this.copy ??= new Map(this.base)
    this.copy.set(key, value)
  }
  delete(key: string): void {
    if (this.get(key) === undefined) return
    this.copy ??= new Map(this.base)
    this.copy.delete(key)
  }
  result(): KvState {
    return this.copy ?? this.base
  }
}

/** The command's effect: its reply and the state after it (the same object when unchanged). */
export function applyKv(state: KvState, input: KvInput): { reply: Reply; state: KvState } {
  const draft = new Draft(state)
  const reply =
    input.op === 'multi'
      ? { kind: 'array' as const, items: input.commands.map((command) => run(draft, command)) }
      : run(draft, input)
  return { reply, state: draft.result() }
}

function run(draft: Draft, input: KvCommand): Reply {
  switch (input.op) {
    case 'get': {
      const value = draft.get(input.key)
      return value === undefined ? NIL : typeof value === 'string' ? bulk(value) : WRONGTYPE
    }
    case 'set': {
      const old = draft.get(input.key)
      if (input.get === true && old !== undefined && typeof old !== 'string') return WRONGTYPE
      const applies =
        input.condition === undefined || (input.condition === 'nx') === (old === undefined)
      if (applies) draft.set(input.key, input.value)
      if (input.get === true) return old === undefined ? NIL : bulk(old as string)
      return applies ? OK : NIL
    }
    case 'setnx': {
      if (draft.get(input.key) !== undefined) return integer(0)
      draft.set(input.key, input.value)
      return integer(1)
    }
    case 'getset':
    case 'getdel': {
      const old = draft.get(input.key)
      if (old !== undefined && typeof old !== 'string') return WRONGTYPE
      if (input.op === 'getset') draft.set(input.key, input.value)
      else draft.delete(input.key)
      return old === undefined ? NIL : bulk(old)
    }
    case 'del': {
      let removed = 0
      for (const key of input.keys ?? [input.key]) {
        if (draft.get(key) !== undefined) removed++
        draft.delete(key)
      }
      return integer(removed)
    }
    case 'exists':
      return integer(
        (input.keys ?? [input.key]).filter((key) => draft.get(key) !== undefined).length,
      )
    case 'incr': {
      const old = draft.get(input.key)
      if (old !== undefined && typeof old !== 'string') return WRONGTYPE
      const current = old === undefined ? 0n : redisInteger(old)
      if (current === undefined) return NOT_INTEGER
      const result = current + BigInt(input.by ?? 1)
      if (!fitsInt64(result)) return OVERFLOW
      draft.set(input.key, String(result))
      return integer(result)
    }
    case 'append': {
      const old = draft.get(input.key)
      if (old !== undefined && typeof old !== 'string') return WRONGTYPE
      const after = (old ?? '') + input.value
      draft.set(input.key, after)
      return integer(utf8Length(after))
    }
    case 'strlen': {
      const value = draft.get(input.key)
      if (value === undefined) return integer(0)
      return typeof value === 'string' ? integer(utf8Length(value)) : WRONGTYPE
    }
    case 'mget':
      return {
        kind: 'array',
        items: input.keys.map((key) => {
          const value = draft.get(key)
          return typeof value === 'string' ? bulk(value) : NIL
        }),
      }
    case 'mset':
      for (const [key, value] of input.entries) draft.set(key, value)
      return OK
    case 'rename': {
      const value = draft.get(input.key)
      if (value === undefined) return NO_SUCH_KEY
      if (input.to !== input.key) {
        draft.delete(input.key)
        draft.set(input.to, value)
      }
      return OK
    }
    case 'hset': {
      const old = hashAt(draft, input.key)
      if (old === 'wrong') return WRONGTYPE
      const hash = new Map(old)
      let added = 0
      for (const [field, value] of input.fields) {
        if (!hash.has(field)) added++
        hash.set(field, value)
      }
      draft.set(input.key, hash)
      return integer(added)
    }
    case 'hget': {
      const hash = hashAt(draft, input.key)
      if (hash === 'wrong') return WRONGTYPE
      const value = hash?.get(input.field)
      return value === undefined ? NIL : bulk(value)
    }
    case 'hdel': {
      const old = hashAt(draft, input.key)
      if (old === 'wrong') return WRONGTYPE
      if (old === undefined) return integer(0)
      const hash = new Map(old)
      let removed = 0
      for (const field of input.fields) if (hash.delete(field)) removed++
      if (hash.size === 0) draft.delete(input.key)
      else if (removed > 0) draft.set(input.key, hash)
      return integer(removed)
    }
    case 'hexists': {
      const hash = hashAt(draft, input.key)
      if (hash === 'wrong') return WRONGTYPE
      return integer(hash?.has(input.field) === true ? 1 : 0)
    }
    case 'hlen': {
      const hash = hashAt(draft, input.key)
      return hash === 'wrong' ? WRONGTYPE : integer(hash?.size ?? 0)
    }
    case 'hincrby': {
      const old = hashAt(draft, input.key)
      if (old === 'wrong') return WRONGTYPE
      const field = old?.get(input.field)
      const current = field === undefined ? 0n : redisInteger(field)
      if (current === undefined) return HASH_NOT_INTEGER
      const result = current + BigInt(input.by)
      if (!fitsInt64(result)) return OVERFLOW
      draft.set(input.key, new Map(old).set(input.field, String(result)))
      return integer(result)
    }
    case 'hgetall': {
      const hash = hashAt(draft, input.key)
      if (hash === 'wrong') return WRONGTYPE
      return { kind: 'pairs', entries: [...(hash ?? [])] }
    }
  }
}

function bulk(value: string): Reply {
  return { kind: 'bulk', value }
}

function hashAt(draft: Draft, key: string): KvHash | undefined | 'wrong' {
  const value = draft.get(key)
  return value === undefined || typeof value !== 'string' ? value : 'wrong'
}

/** The first word of an error message: `WRONGTYPE`, `ERR`. */
function errorCode(message: string): string {
  const space = message.indexOf(' ')
  return (space === -1 ? message : message.slice(0, space)).toUpperCase()
}

export function isKvError(output: unknown): output is KvError {
  return (
    typeof output === 'object' &&
    output !== null &&
    !Array.isArray(output) &&
    typeof (output as { error?: unknown }).error === 'string'
  )
}

function matches(reply: Reply, output: KvOutput): boolean {
  switch (reply.kind) {
    case 'bulk':
      return output === reply.value
    case 'status':
      return output === 'OK'
    case 'error':
      return isKvError(output) && errorCode(output.error) === errorCode(reply.message)
    case 'integer':
      if (typeof output === 'bigint') return output === reply.value
      // A client may hand a 64-bit integer back as a (rounded) double.
      return (
        typeof output === 'number' && Number.isInteger(output) && output === Number(reply.value)
      )
    case 'array':
      return (
        Array.isArray(output) &&
        output.length === reply.items.length &&
        reply.items.every((item, index) => matches(item, (output as readonly KvOutput[])[index]!))
      )
    case 'pairs': {
      if (!Array.isArray(output) || output.length !== reply.entries.length) return false
      const seen = new Map<string, string>()
      for (const pair of output as readonly unknown[]) {
        if (!isPair(pair) || seen.has(pair[0])) return false
        seen.set(pair[0], pair[1])
      }
      return reply.entries.every(([field, value]) => seen.get(field) === value)
    }
  }
}

function isPair(value: unknown): value is readonly [string, string] {
  return (
    Array.isArray(value) &&
    value.length === 2 &&
    typeof value[0] === 'string' &&
    typeof value[1] === 'string'
  )
}

function showReply(reply: Reply): string {
  switch (reply.kind) {
    case 'bulk':
      return reply.value === null ? 'nil' : show(reply.value)
    case 'status':
      return 'OK'
    case 'error':
      return `(error) ${reply.message}`
    case 'integer':
      return String(reply.value)
    case 'array':
      return `[${reply.items.map(showReply).join(', ')}]`
    case 'pairs':
      return `{${reply.entries.map(([field, value]) => `${show(field)}: ${show(value)}`).join(', ')}}`
  }
}

/** An output for humans: `nil`, `"a"`, `3`, `(error) WRONGTYPE …`, `["a", nil]`. */
export function describeKvOutput(output: KvOutput | undefined): string {
  if (output === null) return 'nil'
  if (output === undefined) return '(nothing)'
  if (typeof output === 'bigint') return String(output)
  if (output === 'OK') return 'OK'
  if (isKvError(output)) return `(error) ${output.error}`
  if (Array.isArray(output)) return `[${output.map(describeKvOutput).join(', ')}]`
  return show(output)
}

/** One command for humans: `SET x "1" NX`, `MGET a b`, `MULTI INCR a; GET b EXEC`. */
export function describeKvInput(input: KvInput): string {
  const words = (...parts: string[]) => parts.join(' ')
  switch (input.op) {
    case 'multi':
      return `MULTI ${input.commands.map(describeKvInput).join('; ')} EXEC`
    case 'set':
      return words(
        'SET',
        input.key,
        show(input.value),
        ...(input.condition === undefined ? [] : [input.condition.toUpperCase()]),
        ...(input.get === true ? ['GET'] : []),
      )
    case 'setnx':
    case 'getset':
    case 'append':
      return words(input.op.toUpperCase(), input.key, show(input.value))
    case 'incr': {
      const by = input.by ?? 1
      return by === 1
        ? `INCR ${input.key}`
        : by === -1
          ? `DECR ${input.key}`
          : `INCRBY ${input.key} ${by}`
    }
    case 'del':
    case 'exists':
      return words(input.op.toUpperCase(), ...(input.keys ?? [input.key]))
    case 'mget':
      return words('MGET', ...input.keys)
    case 'mset':
      return words('MSET', ...input.entries.flatMap(([key, value]) => [key, show(value)]))
    case 'rename':
      return words('RENAME', input.key, input.to)
    case 'hset':
      return words(
        'HSET',
        input.key,
        ...input.fields.flatMap(([field, value]) => [field, show(value)]),
      )
    case 'hget':
    case 'hexists':
      return words(input.op.toUpperCase(), input.key, input.field)
    case 'hdel':
      return words('HDEL', input.key, ...input.fields)
    case 'hincrby':
      return words('HINCRBY', input.key, input.field, String(input.by))
    default:
      return words(input.op.toUpperCase(), input.key)
  }
}

function valueKey(value: KvValue): string {
  if (typeof value === 'string') return `=${JSON.stringify(value)}`
  const fields = [...value].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  return `#{${fields.map(([field, v]) => `${JSON.stringify(field)}:${JSON.stringify(v)}`).join(',')}}`
}

/** The memoisation key of a state: equal exactly when the states are. */
export function kvStateKey(state: KvState): string {
  if (state.size === 0) return ''
  const keys = [...state.keys()]
  if (keys.length > 1) keys.sort()
  return keys.map((key) => `${JSON.stringify(key)}${valueKey(state.get(key)!)}`).join(',')
}

function describeValue(value: KvValue | undefined): string {
  if (value === undefined) return 'nil'
  if (typeof value === 'string') return show(value)
  return `{${[...value].map(([field, v]) => `${show(field)}: ${show(v)}`).join(', ')}}`
}

/** A state for humans: `x = "1", h = {"f": "v"}` (`{}` when no key exists). */
export function describeKvState(state: KvState): string {
  if (state.size === 0) return '{} (no key exists)'
  return [...state.keys()]
    .sort()
    .map((key) => `${key} = ${describeValue(state.get(key))}`)
    .join(', ')
}

/** `step` of the key-value model, exported for checkers built on it. */
export function stepKv(state: KvState, input: KvInput, output: KvOutput): StepResult<KvState> {
  const applied = applyKv(state, input)
  if (matches(applied.reply, output)) return { ok: true, state: applied.state }
  return new Rejection(state, input, output, applied.reply)
}

/** The search rejects far more steps than it reports: the reason is written only if read. */
class Rejection {
  readonly ok = false
  constructor(
    private readonly state: KvState,
    private readonly input: KvInput,
    private readonly output: KvOutput,
    private readonly reply: Reply,
  ) {}

  get reason(): string {
    const keys = [...new Set(kvKeys(this.input))]
    const values = keys.map((key) => `${key} = ${describeValue(this.state.get(key))}`).join(', ')
    return `${describeKvInput(this.input)} returned ${describeKvOutput(this.output)}, but with ${values} it returns ${showReply(this.reply)}`
  }
}

const COMMANDS: ReadonlySet<string> = new Set([
  'get',
  'set',
  'setnx',
  'getset',
  'getdel',
  'del',
  'exists',
  'incr',
  'append',
  'strlen',
  'mget',
  'mset',
  'rename',
  'hset',
  'hget',
  'hdel',
  'hexists',
  'hlen',
  'hincrby',
  'hgetall',
])

/** A message for a malformed key-value operation, `undefined` for a good one. */
export function validateKv(operation: KvOperation): string | undefined {
  const problem = validateInput(operation.input as unknown, false)
  if (problem !== undefined) return problem
  if (operation.return === undefined || operation.return === Number.POSITIVE_INFINITY)
    return undefined
  return validateOutput(operation.input, operation.output as unknown)
}

const isString = (value: unknown): value is string => typeof value === 'string'
const isStringList = (value: unknown): value is readonly string[] =>
  Array.isArray(value) && value.length > 0 && value.every(isString)
const isPairList = (value: unknown): boolean =>
  Array.isArray(value) && value.length > 0 && value.every(isPair)

function validateInput(value: unknown, inMulti: boolean): string | undefined {
  const input = value as Record<string, unknown> | null
  if (typeof input !== 'object' || input === null || Array.isArray(input))
    return `input must be an object like { op: 'get', key: 'x' } (got ${show(input)})`
  const op = input.op
  if (op === 'multi') {
    if (inMulti) return 'a transaction cannot hold a multi'
    if (!Array.isArray(input.commands) || input.commands.length === 0)
      return 'multi: input.commands must be a non-empty array of commands'
    for (const [index, command] of (input.commands as unknown[]).entries()) {
      const problem = validateInput(command, true)
      if (problem !== undefined) return `multi: command #${index}: ${problem}`
    }
    return undefined
  }
  if (typeof op !== 'string' || !COMMANDS.has(op))
    return `input.op must be one of ${[...COMMANDS, 'multi'].join(', ')} (got ${show(op)})`
  const need = (name: string, ok: boolean, what: string): string | undefined =>
    ok ? undefined : `${op}: input.${name} must be ${what} (got ${show(input[name])})`
  switch (op) {
    case 'mget':
      return need('keys', isStringList(input.keys), 'a non-empty array of strings')
    case 'mset':
      return need('entries', isPairList(input.entries), 'a non-empty array of [key, value] strings')
    case 'del':
    case 'exists':
      if (input.keys !== undefined && input.key !== undefined)
        return `${op}: give input.key or input.keys, not both`
      return input.keys !== undefined
        ? need('keys', isStringList(input.keys), 'a non-empty array of strings')
        : need('key', isString(input.key), 'a string (or give input.keys)')
    default:
      break
  }
  const key = need('key', isString(input.key), 'a string')
  if (key !== undefined) return key
  switch (op) {
    case 'set':
      return (
        need('value', isString(input.value), 'a string') ??
        need(
          'condition',
          input.condition === undefined || input.condition === 'nx' || input.condition === 'xx',
          "'nx', 'xx' or absent",
        ) ??
        need(
          'get',
          input.get === undefined || typeof input.get === 'boolean',
          'a boolean or absent',
        )
      )
    case 'setnx':
    case 'getset':
    case 'append':
      return need('value', isString(input.value), 'a string')
    case 'incr':
      return need(
        'by',
        input.by === undefined || Number.isSafeInteger(input.by),
        'a safe integer or absent',
      )
    case 'rename':
      return need('to', isString(input.to), 'a string')
    case 'hset':
      return need('fields', isPairList(input.fields), 'a non-empty array of [field, value] strings')
    case 'hget':
    case 'hexists':
      return need('field', isString(input.field), 'a string')
    case 'hdel':
      return need('fields', isStringList(input.fields), 'a non-empty array of strings')
    case 'hincrby':
      return (
        need('field', isString(input.field), 'a string') ??
        need('by', Number.isSafeInteger(input.by), 'a safe integer')
      )
    default:
      return undefined
  }
}

const isInteger = (value: unknown): boolean =>
  typeof value === 'bigint' || (typeof value === 'number' && Number.isInteger(value))

/** Whether the command itself can answer with an error (on the data it finds). */
function canFail(input: KvCommand): boolean {
  switch (input.op) {
    case 'set':
      return input.get === true
    case 'setnx':
    case 'del':
    case 'exists':
    case 'mget':
    case 'mset':
      return false
    default:
      return true
  }
}

function validateOutput(input: KvInput, output: unknown): string | undefined {
  const name = input.op
  const unknownHint = 'for an unknown outcome give return: undefined'
  if (input.op === 'multi') {
    if (!Array.isArray(output) || output.length !== input.commands.length)
      return `multi returns the array EXEC returned, one output per command (${input.commands.length}; got ${show(output)}): an aborted transaction (EXECABORT, a WATCH that failed) did not happen — leave it out, or fail() it`
    for (const [index, command] of input.commands.entries()) {
      const problem = validateOutput(command, output[index])
      if (problem !== undefined) return `multi: command #${index}: ${problem}`
    }
    return undefined
  }
  if (isKvError(output)) {
    const code = errorCode(output.error)
    if (canFail(input) && (code === 'ERR' || code === 'WRONGTYPE')) return undefined
    return `${describeKvInput(input)} got the error reply ${show(output.error)}, which the command cannot give on any data: an error of the system (CLUSTERDOWN, READONLY, TRYAGAIN…) is no output — record the operation as failed (it definitely did not happen) or with an unknown outcome`
  }
  switch (input.op) {
    case 'get':
    case 'getset':
    case 'getdel':
    case 'hget':
      return output === null || isString(output)
        ? undefined
        : `${name} returns a string or null (got ${show(output)}); ${unknownHint}`
    case 'set':
      if (input.get === true)
        return output === null || isString(output)
          ? undefined
          : `set with get returns a string or null (got ${show(output)}); ${unknownHint}`
      return output === 'OK' || output === null
        ? undefined
        : `set returns 'OK', or null when its condition kept it from applying (got ${show(output)}); ${unknownHint}`
    case 'mset':
    case 'rename':
      return output === 'OK' ? undefined : `${name} returns 'OK' (got ${show(output)})`
    case 'mget':
      return Array.isArray(output) &&
        output.length === input.keys.length &&
        output.every((item) => item === null || isString(item))
        ? undefined
        : `mget returns an array of strings and nulls, one per key (${input.keys.length}; got ${show(output)})`
    case 'hgetall':
      return Array.isArray(output) && output.every(isPair)
        ? undefined
        : `hgetall returns an array of [field, value] pairs, Object.entries(reply) (got ${show(output)})`
    default:
      return isInteger(output)
        ? undefined
        : `${name} returns an integer (got ${show(output)}); ${unknownHint}`
  }
}

/**
 * The key-value model, partitioned by key (keys that one operation touches together form one
 * part). An operation with an unknown outcome takes effect as the command would (an INCR that
 * timed out may have incremented), or never.
 */
export function kvModel(): Model<KvState, KvInput, KvOutput> {
  return {
    init: () => new Map(),
    step: stepKv,
    stepUnknown: (state, input) => applyKv(state, input).state,
    readOnly: kvReadOnly,
    independent: kvIndependent,
    overwrites: kvOverwrites,
    commandKey: (input) => JSON.stringify(input),
    partition: partitionByKeys((operation: KvOperation) => kvKeys(operation.input)),
    key: kvStateKey,
    validate: validateKv,
    describeOperation: (input, output, known) =>
      `${describeKvInput(input)} → ${known ? describeKvOutput(output) : '?'}`,
    describeState: describeKvState,
  }
}
