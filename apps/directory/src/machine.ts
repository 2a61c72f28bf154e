/**
 * The directory as a Dispatcher state machine: one replicated command, `run`, carrying one
 * or more Redis commands (several for `MULTI … EXEC`, applied as one atomic step) and the
 * submitter's clock reading.
 *
 * Two machines, one per Order. `directoryMachine` (total order) keeps one clock, the largest
 * reading of any applied write. `keyedDirectoryMachine` (semantic order, `directoryKeys`:
 * commands on different keys commute) cannot: a write's time must not depend on writes to
 * other keys, which replicas apply in different orders. There a `run` takes as its time the
 * largest of its own reading and the **clocks of the keys it touches** (the last write time
 * of each, or of the last `'all'` write such as FLUSHDB), so it depends only on commands it
 * conflicts with; the global clock is still the largest of all (order-independent), and what
 * `'all'` commands (KEYS, DBSIZE, FLUSHDB) use.
 */

import { classOfCommands, decodeCommand, defineCommands, stateMachine } from '@consul/dispatcher'
import type { CommandKeys } from '@consul/order-semantic'
import type { Reply } from './resp.js'
import { ARITY, arityError, Directory, type Entry, execute, READS } from './store.js'

export interface RunArgs {
  /** The commands, each as its words (name first). */
  readonly c: readonly Uint8Array[][]
  /** The submitter's clock (ms since the epoch) when it submitted them. */
  readonly t: number
}

const buf = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength)

function run(d: Directory, a: RunArgs): Reply[] {
  d.applied++
  // Copies: a stored value must not keep the whole delivered message alive.
  return a.c.map((words) =>
    execute(
      d,
      words.map((w) => Buffer.from(buf(w))),
      a.t,
    ),
  )
}

export const commands = defineCommands({ run })

/**
 * The key clocks of a keyed directory: `keys` — the time of the last write to each key that
 * exists; `floor` — the time of the last `'all'` write (a key without a clock has this one).
 * Invariant: a function of the commands applied that touch the key (or are `'all'`), so
 * equal at every replica once those are applied, whatever the order of the others.
 */
interface KeyClocks {
  floor: number
  readonly keys: Map<string, number>
}

const keyClocks = new WeakMap<Directory, KeyClocks>()

function clocksOf(d: Directory): KeyClocks {
  let kc = keyClocks.get(d)
  if (kc === undefined) keyClocks.set(d, (kc = { floor: 0, keys: new Map() }))
  return kc
}

/** `run` with key clocks: the semantic order's machine (see the file's comment). */
export const keyedCommands = defineCommands({
  run: (d: Directory, a: RunArgs): Reply[] => {
    const access = runKeys(a.c)
    const kc = clocksOf(d)
    if (access === 'all') {
      const replies = run(d, a)
      if (!readOnly(a.c)) {
        kc.floor = d.clock
        kc.keys.clear()
      }
      return replies
    }
    const global = d.clock
    let local = kc.floor
    for (const k of access.keys) local = Math.max(local, kc.keys.get(k) ?? 0)
    d.clock = local
    try {
      const replies = run(d, a)
      if (access.write)
        for (const k of access.keys)
          if (d.keys.has(k)) kc.keys.set(k, d.clock)
          else kc.keys.delete(k)
      return replies
    } finally {
      d.clock = Math.max(global, d.clock)
    }
  },
})

type Stored =
  | [string, 0, Uint8Array, number | null]
  | [string, 1, [string, Uint8Array][], number | null]

function snapshot(d: Directory) {
  const keys: Stored[] = []
  for (const [k, e] of d.keys) {
    if (e.type === 'string') keys.push([k, 0, e.value, e.expireAt ?? null])
    else keys.push([k, 1, [...e.fields], e.expireAt ?? null])
  }
  return { clock: d.clock, applied: d.applied, keys }
}

function restore(x: unknown): Directory {
  const s = x as { clock: number; applied?: number; keys: Stored[] }
  const d = new Directory()
  d.clock = s.clock
  d.applied = s.applied ?? 0
  for (const [k, type, v, expireAt] of s.keys) {
    const e: Entry =
      type === 0
        ? { type: 'string', value: Buffer.from(v as Uint8Array), expireAt: expireAt ?? undefined }
        : {
            type: 'hash',
            fields: new Map((v as [string, Uint8Array][]).map(([f, b]) => [f, Buffer.from(b)])),
            expireAt: expireAt ?? undefined,
          }
    d.keys.set(k, e)
  }
  return d
}

/** The machine for total order: snapshot and restore for checkpoints, state transfer and joins. */
export const directoryMachine = stateMachine({
  initial: () => new Directory(),
  commands,
  snapshot,
  restore,
})

/** The machine for semantic order (`directoryKeys`): the key clocks travel in its snapshots. */
export const keyedDirectoryMachine = stateMachine({
  initial: () => new Directory(),
  commands: keyedCommands,
  snapshot: (d: Directory) => {
    const kc = clocksOf(d)
    return { ...snapshot(d), kc: [kc.floor, [...kc.keys]] as [number, [string, number][]] }
  },
  restore: (x) => {
    const d = restore(x)
    const kc = (x as { kc?: [number, [string, number][]] }).kc
    if (kc !== undefined) keyClocks.set(d, { floor: kc[0], keys: new Map(kc[1]) })
    return d
  },
})

/** Whether every command of a `run` only reads: those commute (rank 0 in semantic order). */
export const readOnly = (c: readonly Uint8Array[][]) =>
  c.every((w) => READS.has(Buffer.from(buf(w[0]!)).toString('latin1').toUpperCase()))

/**
 * The classes for `@consul/order-semantic`: read-only commands are rank 0 (they commute with
 * each other, so they are delivered early), every write rank 1 (ordered after its wave).
 */
export const directoryClasses = classOfCommands((_tag, args) => {
  const c = (args as Partial<RunArgs> | undefined)?.c
  // Bytes that are no directory command get rank 1: they are dropped everywhere anyway.
  return Array.isArray(c) &&
    c.every((w) => Array.isArray(w) && w[0] instanceof Uint8Array) &&
    readOnly(c)
    ? 0
    : 1
}, 1)

/** Commands that touch every key, or no key the arguments name: `'all'`. */
const ALL_KEYS = new Set(['KEYS', 'SCAN', 'DBSIZE', 'FLUSHDB'])

/** The keys one command names (latin1, as the store keys them), or `'all'`. */
function commandKeys(words: readonly Uint8Array[]): readonly string[] | 'all' {
  const argv = words.map((w) => Buffer.from(buf(w)))
  const name = argv[0]!.toString('latin1').toUpperCase()
  // Unknown names and wrong arities: rare, and 'all' is always safe.
  if (ARITY[name] === undefined || ALL_KEYS.has(name) || arityError(argv) !== undefined)
    return 'all'
  const k = (i: number) => argv[i]!.toString('latin1')
  switch (name) {
    case 'DEL':
    case 'EXISTS':
    case 'MGET':
      return argv.slice(1).map((b) => b.toString('latin1'))
    case 'MSET':
      return argv.flatMap((b, i) => (i % 2 === 1 ? [b.toString('latin1')] : []))
    case 'RENAME':
      return [k(1), k(2)]
    default:
      // Every other data command names one key, first.
      return [k(1)]
  }
}

/** What a `run` touches: the union of its commands' keys, a write if any of them writes. */
function runKeys(c: readonly Uint8Array[][]): CommandKeys {
  const keys = new Set<string>()
  for (const words of c) {
    const named = commandKeys(words)
    if (named === 'all') return 'all'
    for (const k of named) keys.add(k)
  }
  return { keys: [...keys], write: !readOnly(c) }
}

/**
 * The keys for `@consul/order-semantic`'s `keysOf`: a `run`'s keys (a MULTI's: the union of
 * its commands' keys), a write if any of its commands writes; `'all'` for KEYS, SCAN, DBSIZE,
 * FLUSHDB, unknown commands, wrong arities and bytes that are no directory command (those
 * are dropped everywhere anyway). A pure function of the command bytes.
 */
export function directoryKeys(command: Uint8Array): CommandKeys {
  const decoded = decodeCommand(command)
  if (typeof decoded === 'string' || decoded.tag !== 'run') return 'all'
  const c = (decoded.args as Partial<RunArgs> | undefined)?.c
  if (
    !Array.isArray(c) ||
    c.length === 0 ||
    !c.every((w) => Array.isArray(w) && w.length > 0 && w.every((x) => x instanceof Uint8Array))
  )
    return 'all'
  return runKeys(c)
}
