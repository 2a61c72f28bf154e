/**
 * The tuple space as a Dispatcher state machine, for `@consul/order-semantic`.
 *
 * `out` is **rank 0**: outs commute with each other (each adds one entry to a multiset), so
 * they are delivered early, in possibly different orders at different replicas. Every other
 * command is **rank 1**: delivered once its wave is complete, in the same order everywhere.
 *
 * Invariant (why the choice of a tuple is the same everywhere): an `out` of wave *w* is
 * applied after every command of the waves < *w* and before every rank-1 command of waves
 * ≥ *w* (semantic order's rule), so the number of rank-1 commands applied before it — its
 * **epoch**, counted in `SpaceState.epoch` — is the same at every replica. An entry is keyed
 * `(epoch, origin, session, seq)` from the out's arguments and its epoch, and tuples are taken
 * in that key order (ties, which only identical re-sent entries can produce, by the tuple's
 * value): "oldest" is "earliest epoch". A rank-1 command sees the same entries at every
 * replica (it runs at a wave boundary of the outs), so it picks the same one.
 *
 * No handler of a rank-0 command does anything order-dependent: an `out` never hands its
 * tuple to a waiter. Waiters are resolved by `claim`, a rank-1 command the waiter's own
 * replica submits when it sees a matching tuple; the hand-over happens in the total order of
 * the rank-1 commands, so each tuple goes to one `in` everywhere. A waiter's replica that
 * crashed never claims: its waiters never take anything, and `forget` (submitted by the
 * replica when it starts again) removes them.
 */
import { classOfCommands, defineCommands, stateMachine } from '@consul/dispatcher'
import { TupleSpaceError } from './errors.js'
import {
  compareTuples,
  isFormal,
  matches,
  type Template,
  type Tuple,
  type Value,
  validateTemplate,
  validateTuple,
} from './tuple.js'

/** Who issued a command: the replica (member id), its process's session, a number in it. */
export interface Ref {
  readonly origin: string
  readonly session: string
  readonly seq: number
}

/** A tuple in the space, with the key that orders it (the same at every replica). */
export interface Entry extends Ref {
  /** The number of rank-1 commands applied before its `out` (see the file's header). */
  readonly epoch: number
  readonly tuple: Tuple
}

export type Mode = 'in' | 'rd'

/** A blocked `in` or `rd`, registered by `take`, resolved by its replica's `claim`. */
export interface Waiter extends Ref {
  readonly mode: Mode
  readonly template: Template
}

export interface SpaceState {
  /** Rank-1 commands applied so far. */
  epoch: number
  /** Tuples in the space. */
  size: number
  /** Arity → first field's key → entries in key order. */
  readonly index: Map<number, Map<string, Entry[]>>
  /** Waiters by `refKey`, in the order they were registered (the same everywhere). */
  readonly waiters: Map<string, Waiter>
}

export interface OutArgs extends Ref {
  readonly tuple: Tuple
}
export interface TakeArgs extends Ref {
  readonly mode: Mode
  readonly template: Template
  /** `in`/`rd` (true: register a waiter if nothing matches) or `inp`/`rdp` (false). */
  readonly block: boolean
}
export type TakeResult =
  | { readonly kind: 'taken'; readonly entry: Entry }
  | { readonly kind: 'waiting' }
  | { readonly kind: 'none' }
export type ClaimResult =
  | { readonly kind: 'taken'; readonly entry: Entry }
  | { readonly kind: 'waiting' }
  /** No such waiter: cancelled, forgotten, served already, or never registered. */
  | { readonly kind: 'gone' }

/** A waiter's key in `SpaceState.waiters`. */
export const refKey = (r: Ref): string => JSON.stringify([r.origin, r.session, r.seq])

export function compareEntries(a: Entry, b: Entry): number {
  if (a.epoch !== b.epoch) return a.epoch - b.epoch
  if (a.origin !== b.origin) return a.origin < b.origin ? -1 : 1
  if (a.session !== b.session) return a.session < b.session ? -1 : 1
  if (a.seq !== b.seq) return a.seq - b.seq
  return compareTuples(a.tuple, b.tuple)
}

function hex(bytes: Uint8Array): string {
  let s = ''
  for (const b of bytes) s += b.toString(16).padStart(2, '0')
  return s
}

/** The bucket of a tuple by its first field (one bucket per distinct value). */
function firstKey(value: Value): string {
  if (value === null) return 'z'
  if (typeof value === 'boolean') return value ? 'b:1' : 'b:0'
  if (typeof value === 'number') return `n:${value}`
  if (typeof value === 'string') return `s:${value}`
  return `x:${hex(value)}`
}

/** The buckets a template's first field can match: its value's, or every one of a type. */
function bucketsFor(state: SpaceState, template: Template): Entry[][] {
  const byFirst = state.index.get(template.length)
  if (byFirst === undefined) return []
  const first = template[0]
  if (!isFormal(first)) {
    const bucket = byFirst.get(firstKey(first as Value))
    return bucket === undefined ? [] : [bucket]
  }
  const prefix = {
    string: 's:',
    number: 'n:',
    int: 'n:',
    boolean: 'b:',
    bytes: 'x:',
    any: '',
  }[first.formal]
  const out: Entry[][] = []
  for (const [key, bucket] of byFirst) if (key.startsWith(prefix)) out.push(bucket)
  return out
}

/**
 * The first entry in key order that `template` matches, skipping those in `skip` (a
 * replica's own bookkeeping; handlers never pass it).
 */
export function firstMatch(
  state: SpaceState,
  template: Template,
  skip?: ReadonlySet<Entry>,
): Entry | undefined {
  let best: Entry | undefined
  for (const bucket of bucketsFor(state, template))
    for (const entry of bucket) {
      if (best !== undefined && compareEntries(entry, best) >= 0) break
      if (skip?.has(entry)) continue
      if (matches(template, entry.tuple)) {
        best = entry
        break
      }
    }
  return best
}

function insert(state: SpaceState, entry: Entry): void {
  let byFirst = state.index.get(entry.tuple.length)
  if (byFirst === undefined) state.index.set(entry.tuple.length, (byFirst = new Map()))
  const key = firstKey(entry.tuple[0] as Value)
  let bucket = byFirst.get(key)
  if (bucket === undefined) byFirst.set(key, (bucket = []))
  // Upper bound: outs mostly arrive in key order, so this is usually the end.
  let lo = 0
  let hi = bucket.length
  if (hi > 0 && compareEntries(bucket[hi - 1]!, entry) <= 0) lo = hi
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (compareEntries(bucket[mid]!, entry) <= 0) lo = mid + 1
    else hi = mid
  }
  bucket.splice(lo, 0, entry)
  state.size++
}

function remove(state: SpaceState, entry: Entry): void {
  const byFirst = state.index.get(entry.tuple.length)
  const key = firstKey(entry.tuple[0] as Value)
  const bucket = byFirst?.get(key)
  const at = bucket?.indexOf(entry) ?? -1
  if (at < 0) throw new TupleSpaceError('INTERNAL', 'an entry to remove is not in the space')
  bucket!.splice(at, 1)
  if (bucket!.length === 0) {
    byFirst!.delete(key)
    if (byFirst!.size === 0) state.index.delete(entry.tuple.length)
  }
  state.size--
}

/** Every entry, in key order (the same list at every replica with the same state). */
export function entries(state: SpaceState): Entry[] {
  const all: Entry[] = []
  for (const byFirst of state.index.values())
    for (const bucket of byFirst.values()) for (const e of bucket) all.push(e)
  return all.sort(compareEntries)
}

function checkRef(args: unknown): Ref {
  const a = args as Partial<Ref> | null
  if (
    typeof a !== 'object' ||
    a === null ||
    typeof a.origin !== 'string' ||
    a.origin.length === 0 ||
    typeof a.session !== 'string' ||
    !Number.isSafeInteger(a.seq) ||
    (a.seq as number) < 0
  )
    throw new TupleSpaceError('BAD_REQUEST', 'a command names its { origin, session, seq }')
  return { origin: a.origin, session: a.session, seq: a.seq as number }
}

function checkMode(mode: unknown): Mode {
  if (mode !== 'in' && mode !== 'rd')
    throw new TupleSpaceError('BAD_REQUEST', `mode ${String(mode)} is neither in nor rd`)
  return mode
}

function checkEntry(value: unknown): Entry {
  const ref = checkRef(value)
  const epoch = (value as { epoch?: unknown }).epoch
  if (!Number.isSafeInteger(epoch) || (epoch as number) < 0)
    throw new TupleSpaceError('BAD_REQUEST', 'an entry has a natural epoch')
  return Object.freeze({
    epoch: epoch as number,
    ...ref,
    tuple: Object.freeze(validateTuple((value as { tuple?: unknown }).tuple)),
  })
}

export function emptySpace(): SpaceState {
  return { epoch: 0, size: 0, index: new Map(), waiters: new Map() }
}

const commands = defineCommands({
  /** Rank 0. Adds the tuple with its epoch; never hands it to a waiter (see the header). */
  out: (s: SpaceState, a: OutArgs): undefined => {
    const ref = checkRef(a)
    const tuple = Object.freeze(validateTuple(a.tuple))
    insert(s, Object.freeze({ epoch: s.epoch, ...ref, tuple }))
    return undefined
  },
  /**
   * Rank 1: `in`/`rd` (`block`) and `inp`/`rdp`. Takes (`in`) or reads (`rd`) the first
   * matching entry in key order; with none, registers a waiter (`block`) or answers `none`.
   * A waiter already registered under this ref (the same take again) stays as it is.
   */
  take: (s: SpaceState, a: TakeArgs): TakeResult => {
    s.epoch++
    const ref = checkRef(a)
    const mode = checkMode(a.mode)
    const template = validateTemplate(a.template)
    const key = refKey(ref)
    if (s.waiters.has(key)) return { kind: 'waiting' }
    const entry = firstMatch(s, template)
    if (entry !== undefined) {
      if (mode === 'in') remove(s, entry)
      return { kind: 'taken', entry }
    }
    if (a.block !== true) return { kind: 'none' }
    s.waiters.set(key, Object.freeze({ ...ref, mode, template: Object.freeze(template) }))
    return { kind: 'waiting' }
  },
  /** Rank 1: the waiter's replica saw a match. Serves the waiter if one still matches. */
  claim: (s: SpaceState, a: Ref): ClaimResult => {
    s.epoch++
    const key = refKey(checkRef(a))
    const waiter = s.waiters.get(key)
    if (waiter === undefined) return { kind: 'gone' }
    const entry = firstMatch(s, waiter.template)
    if (entry === undefined) return { kind: 'waiting' }
    s.waiters.delete(key)
    if (waiter.mode === 'in') remove(s, entry)
    return { kind: 'taken', entry }
  },
  /** Rank 1: removes waiters (a client disconnected or cancelled); true for each removed. */
  cancel: (s: SpaceState, a: { readonly waiters: readonly Ref[] }): boolean[] => {
    s.epoch++
    if (!Array.isArray(a?.waiters)) throw new TupleSpaceError('BAD_REQUEST', 'cancel { waiters }')
    return a.waiters.map((r) => s.waiters.delete(refKey(checkRef(r))))
  },
  /**
   * Rank 1: puts entries back with their own keys — a tuple taken for a client that was gone
   * by the time it came (it goes back where it was in the order).
   */
  release: (s: SpaceState, a: { readonly entries: readonly Entry[] }): number => {
    s.epoch++
    if (!Array.isArray(a?.entries)) throw new TupleSpaceError('BAD_REQUEST', 'release { entries }')
    const back = a.entries.map(checkEntry)
    for (const e of back) insert(s, e)
    return back.length
  },
  /**
   * Rank 1: a replica started again removes the waiters of its earlier sessions (their
   * clients' connections died with the process). Returns how many.
   */
  forget: (s: SpaceState, a: { readonly origin: string; readonly session: string }): number => {
    s.epoch++
    if (typeof a?.origin !== 'string' || typeof a.session !== 'string')
      throw new TupleSpaceError('BAD_REQUEST', 'forget { origin, session }')
    let removed = 0
    for (const [key, w] of [...s.waiters])
      if (w.origin === a.origin && w.session !== a.session) {
        s.waiters.delete(key)
        removed++
      }
    return removed
  },
})

type SnapshotEntry = [number, string, string, number, Tuple]
type SnapshotWaiter = [string, string, number, Mode, Template]
interface Snapshot {
  readonly v: 1
  readonly epoch: number
  readonly entries: SnapshotEntry[]
  readonly waiters: SnapshotWaiter[]
}

/** The state as plain data, in a canonical order (equal states give equal snapshots). */
export function snapshotSpace(s: SpaceState): Snapshot {
  return {
    v: 1,
    epoch: s.epoch,
    entries: entries(s).map((e) => [e.epoch, e.origin, e.session, e.seq, e.tuple]),
    waiters: [...s.waiters.values()].map((w) => [w.origin, w.session, w.seq, w.mode, w.template]),
  }
}

export function restoreSpace(x: unknown): SpaceState {
  const snap = x as Partial<Snapshot> | null
  if (
    typeof snap !== 'object' ||
    snap === null ||
    snap.v !== 1 ||
    !Number.isSafeInteger(snap.epoch) ||
    !Array.isArray(snap.entries) ||
    !Array.isArray(snap.waiters)
  )
    throw new TupleSpaceError('BAD_REQUEST', 'not a tuple-space snapshot (version 1)')
  const s = emptySpace()
  s.epoch = snap.epoch as number
  for (const e of snap.entries) {
    const [epoch, origin, session, seq, tuple] = e as SnapshotEntry
    insert(s, checkEntry({ epoch, origin, session, seq, tuple }))
  }
  for (const w of snap.waiters) {
    const [origin, session, seq, mode, template] = w as SnapshotWaiter
    const ref = checkRef({ origin, session, seq })
    s.waiters.set(
      refKey(ref),
      Object.freeze({
        ...ref,
        mode: checkMode(mode),
        template: Object.freeze(validateTemplate(template)),
      }),
    )
  }
  return s
}

/** The replicated tuple space: give it to `dispatcher({ machine })`. */
export const tupleSpaceMachine = stateMachine({
  initial: emptySpace,
  commands,
  snapshot: snapshotSpace,
  restore: restoreSpace,
})

/** Command ranks: `out` 0 (commutes, early), everything else 1 (ordered). */
export const rankOf = (tag: string): number => (tag === 'out' ? 0 : 1)

/** The `classOf` for `semanticOrder({ classOf })`. */
export const tupleSpaceClasses = classOfCommands((tag) => rankOf(tag), 1)
