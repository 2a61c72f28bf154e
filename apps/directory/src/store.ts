/**
 * The directory's state and its commands: what every replica applies, in the Order's order.
 *
 * Deterministic by construction: a command's effect depends only on the state, its arguments
 * and `now` — the submitter's clock reading, carried in the ordered command. The state's
 * clock is the largest `now` applied so far, so an expiry (`EX`, `PX`) is decided from the
 * ordered command and lapses at the same point of the command stream at every replica, never
 * from each replica's own clock.
 */

import { ErrorReply, MapReply, OK, type Reply, Simple } from './resp.js'

export type Entry =
  | { type: 'string'; value: Buffer; expireAt: number | undefined }
  | { type: 'hash'; fields: Map<string, Buffer>; expireAt: number | undefined }

/** A directory: keys (bytes as latin1 strings, so every byte string is a distinct key). */
export class Directory {
  readonly keys = new Map<string, Entry>()
  /** The largest clock reading of an applied write (ms since the epoch). */
  clock = 0
  /** Replicated commands (`run`s) applied: equal at equal points of the stream, so replicas compare by it. */
  applied = 0
}

export const WRONGTYPE = new ErrorReply(
  'WRONGTYPE Operation against a key holding the wrong kind of value',
)
export const NOT_INTEGER = new ErrorReply('ERR value is not an integer or out of range')
export const SYNTAX = new ErrorReply('ERR syntax error')

const MIN = -(2n ** 63n)
const MAX = 2n ** 63n - 1n

const key = (b: Buffer) => b.toString('latin1')
const upper = (b: Buffer) => b.toString('latin1').toUpperCase()

/** A strict 64-bit integer as Redis reads one (`string2ll`), or undefined. */
export function parseInteger(b: Buffer): bigint | undefined {
  const s = b.toString('latin1')
  if (!/^(0|-?[1-9]\d{0,19})$/.test(s)) return undefined
  const n = BigInt(s)
  return n < MIN || n > MAX ? undefined : n
}

const int = (n: bigint): Reply => (n >= -(2n ** 53n) && n <= 2n ** 53n ? Number(n) : n)

/** The live entry of a key at `now`, or undefined (an expired one counts as absent). */
function live(d: Directory, k: string, now: number): Entry | undefined {
  const e = d.keys.get(k)
  if (e === undefined) return undefined
  if (e.expireAt !== undefined && e.expireAt <= now) return undefined
  return e
}

/** Commands that never change the state: local reads, or rank 0 in semantic order. */
export const READS = new Set([
  'GET',
  'MGET',
  'EXISTS',
  'STRLEN',
  'KEYS',
  'SCAN',
  'DBSIZE',
  'TYPE',
  'HGET',
  'HGETALL',
  'HEXISTS',
  'HLEN',
  'HKEYS',
  'HVALS',
  'TTL',
  'PTTL',
])

/** Arity as Redis gives it: n ≥ 0 exactly n words (name included), −n at least n. */
export const ARITY: Record<string, number> = {
  GET: 2,
  SET: -3,
  DEL: -2,
  EXISTS: -2,
  INCR: 2,
  INCRBY: 3,
  DECR: 2,
  DECRBY: 3,
  APPEND: 3,
  STRLEN: 2,
  GETSET: 3,
  GETDEL: 2,
  MGET: -2,
  MSET: -3,
  SETNX: 3,
  KEYS: 2,
  SCAN: -2,
  DBSIZE: 1,
  TYPE: 2,
  FLUSHDB: -1,
  RENAME: 3,
  HSET: -4,
  HGET: 3,
  HDEL: -3,
  HGETALL: 2,
  HEXISTS: 3,
  HLEN: 2,
  HKEYS: 2,
  HVALS: 2,
  HINCRBY: 4,
  TTL: 2,
  PTTL: 2,
  EXPIRE: -3,
  PEXPIRE: -3,
  PERSIST: 2,
}

/** The arity error in Redis's words, or undefined when `argv` has the right count. */
export function arityError(argv: readonly Buffer[]): ErrorReply | undefined {
  const name = upper(argv[0]!)
  const a = ARITY[name]
  if (a === undefined) return undefined
  if (a >= 0 ? argv.length === a : argv.length >= -a) return undefined
  return new ErrorReply(`ERR wrong number of arguments for '${name.toLowerCase()}' command`)
}

/**
 * Applies one data command (name already known to be in `ARITY`, arity checked) at `now`.
 * Reads leave the state as it is; writes advance the clock to `now` first.
 */
export function execute(d: Directory, argv: readonly Buffer[], now: number): Reply {
  const name = upper(argv[0]!)
  const bad = arityError(argv)
  if (bad !== undefined) return bad
  if (!READS.has(name) && now > d.clock) d.clock = now
  const t = READS.has(name) ? Math.max(now, d.clock) : d.clock
  const k = argv[1] === undefined ? '' : key(argv[1])
  switch (name) {
    case 'GET': {
      const e = live(d, k, t)
      if (e === undefined) return null
      return e.type === 'string' ? e.value : WRONGTYPE
    }
    case 'SET':
      return set(d, argv, t)
    case 'SETNX': {
      if (live(d, k, t) !== undefined) return 0
      d.keys.set(k, { type: 'string', value: argv[2]!, expireAt: undefined })
      return 1
    }
    case 'GETSET':
    case 'GETDEL': {
      const e = live(d, k, t)
      if (e !== undefined && e.type !== 'string') return WRONGTYPE
      if (name === 'GETSET') d.keys.set(k, { type: 'string', value: argv[2]!, expireAt: undefined })
      else d.keys.delete(k)
      return e === undefined ? null : e.value
    }
    case 'DEL': {
      let n = 0
      for (const a of argv.slice(1)) {
        if (live(d, key(a), t) !== undefined) n++
        d.keys.delete(key(a))
      }
      return n
    }
    case 'EXISTS':
      return argv.slice(1).filter((a) => live(d, key(a), t) !== undefined).length
    case 'INCR':
    case 'DECR':
    case 'INCRBY':
    case 'DECRBY': {
      let by = 1n
      if (name === 'INCRBY' || name === 'DECRBY') {
        const n = parseInteger(argv[2]!)
        if (n === undefined) return NOT_INTEGER
        by = n
      }
      if (name.startsWith('DECR')) by = -by
      const e = live(d, k, t)
      if (e !== undefined && e.type !== 'string') return WRONGTYPE
      const old = e === undefined ? 0n : parseInteger(e.value)
      if (old === undefined) return NOT_INTEGER
      const v = old + by
      if (v < MIN || v > MAX) return new ErrorReply('ERR increment or decrement would overflow')
      d.keys.set(k, {
        type: 'string',
        value: Buffer.from(v.toString()),
        expireAt: e?.expireAt,
      })
      return int(v)
    }
    case 'APPEND': {
      const e = live(d, k, t)
      if (e !== undefined && e.type !== 'string') return WRONGTYPE
      const value = e === undefined ? argv[2]! : Buffer.concat([e.value, argv[2]!])
      d.keys.set(k, { type: 'string', value, expireAt: e?.expireAt })
      return value.length
    }
    case 'STRLEN': {
      const e = live(d, k, t)
      if (e === undefined) return 0
      return e.type === 'string' ? e.value.length : WRONGTYPE
    }
    case 'MGET':
      return argv.slice(1).map((a) => {
        const e = live(d, key(a), t)
        return e?.type === 'string' ? e.value : null
      })
    case 'MSET': {
      if (argv.length % 2 === 0) {
        return new ErrorReply("ERR wrong number of arguments for 'mset' command")
      }
      for (let i = 1; i < argv.length; i += 2) {
        d.keys.set(key(argv[i]!), { type: 'string', value: argv[i + 1]!, expireAt: undefined })
      }
      return OK
    }
    case 'KEYS': {
      const match = glob(argv[1]!.toString('latin1'))
      return liveKeys(d, t)
        .filter((x) => match(x))
        .map((x) => Buffer.from(x, 'latin1'))
    }
    case 'SCAN':
      return scan(d, argv, t)
    case 'DBSIZE':
      return liveKeys(d, t).length
    case 'TYPE': {
      const e = live(d, k, t)
      return new Simple(e?.type ?? 'none')
    }
    case 'FLUSHDB': {
      const mode = argv[1] === undefined ? 'SYNC' : upper(argv[1])
      if (argv.length > 2 || (mode !== 'SYNC' && mode !== 'ASYNC')) return SYNTAX
      d.keys.clear()
      return OK
    }
    case 'RENAME': {
      const e = live(d, k, t)
      if (e === undefined) return new ErrorReply('ERR no such key')
      d.keys.delete(k)
      d.keys.set(key(argv[2]!), e)
      return OK
    }
    case 'HSET': {
      if (argv.length % 2 !== 0) {
        return new ErrorReply("ERR wrong number of arguments for 'hset' command")
      }
      const h = hash(d, k, t, true)
      if (h instanceof ErrorReply) return h
      let added = 0
      for (let i = 2; i < argv.length; i += 2) {
        if (!h!.has(key(argv[i]!))) added++
        h!.set(key(argv[i]!), argv[i + 1]!)
      }
      return added
    }
    case 'HGET': {
      const h = hash(d, k, t, false)
      if (h instanceof ErrorReply) return h
      return h?.get(key(argv[2]!)) ?? null
    }
    case 'HDEL': {
      const h = hash(d, k, t, false)
      if (h instanceof ErrorReply) return h
      if (h === undefined) return 0
      let n = 0
      for (const f of argv.slice(2)) if (h.delete(key(f))) n++
      if (h.size === 0) d.keys.delete(k)
      return n
    }
    case 'HGETALL': {
      const h = hash(d, k, t, false)
      if (h instanceof ErrorReply) return h
      return new MapReply([...(h ?? [])].map(([f, v]) => [Buffer.from(f, 'latin1'), v] as const))
    }
    case 'HEXISTS': {
      const h = hash(d, k, t, false)
      if (h instanceof ErrorReply) return h
      return h?.has(key(argv[2]!)) === true ? 1 : 0
    }
    case 'HLEN': {
      const h = hash(d, k, t, false)
      return h instanceof ErrorReply ? h : (h?.size ?? 0)
    }
    case 'HKEYS':
    case 'HVALS': {
      const h = hash(d, k, t, false)
      if (h instanceof ErrorReply) return h
      return name === 'HKEYS'
        ? [...(h?.keys() ?? [])].map((f) => Buffer.from(f, 'latin1'))
        : [...(h?.values() ?? [])]
    }
    case 'HINCRBY': {
      const by = parseInteger(argv[3]!)
      if (by === undefined) return NOT_INTEGER
      const h = hash(d, k, t, true)
      if (h instanceof ErrorReply) return h
      const f = key(argv[2]!)
      const old = h!.has(f) ? parseInteger(h!.get(f)!) : 0n
      if (old === undefined) return new ErrorReply('ERR hash value is not an integer')
      const v = old + by
      if (v < MIN || v > MAX) return new ErrorReply('ERR increment or decrement would overflow')
      h!.set(f, Buffer.from(v.toString()))
      return int(v)
    }
    case 'TTL':
    case 'PTTL': {
      const e = live(d, k, t)
      if (e === undefined) return -2
      if (e.expireAt === undefined) return -1
      const ms = e.expireAt - t
      return name === 'PTTL' ? ms : Math.round(ms / 1000)
    }
    case 'EXPIRE':
    case 'PEXPIRE': {
      const n = parseInteger(argv[2]!)
      if (n === undefined) return NOT_INTEGER
      if (argv.length > 3) return SYNTAX
      const e = live(d, k, t)
      if (e === undefined) return 0
      const ms = Number(n) * (name === 'EXPIRE' ? 1000 : 1)
      if (ms <= 0) d.keys.delete(k)
      else e.expireAt = t + ms
      return 1
    }
    case 'PERSIST': {
      const e = live(d, k, t)
      if (e === undefined || e.expireAt === undefined) return 0
      e.expireAt = undefined
      return 1
    }
  }
  return new ErrorReply(`ERR unknown command '${name.toLowerCase()}'`)
}

function set(d: Directory, argv: readonly Buffer[], t: number): Reply {
  const k = key(argv[1]!)
  let nx = false
  let xx = false
  let get = false
  let keepTtl = false
  let expireAt: number | undefined
  for (let i = 3; i < argv.length; i++) {
    const o = upper(argv[i]!)
    if (o === 'NX' && !xx) nx = true
    else if (o === 'XX' && !nx) xx = true
    else if (o === 'GET') get = true
    else if (o === 'KEEPTTL' && expireAt === undefined) keepTtl = true
    else if ((o === 'EX' || o === 'PX') && expireAt === undefined && !keepTtl) {
      const n = argv[i + 1] === undefined ? undefined : parseInteger(argv[i + 1]!)
      if (argv[i + 1] === undefined) return SYNTAX
      if (n === undefined) return NOT_INTEGER
      if (n <= 0n) return new ErrorReply("ERR invalid expire time in 'set' command")
      expireAt = t + Number(n) * (o === 'EX' ? 1000 : 1)
      i++
    } else return SYNTAX
  }
  const e = live(d, k, t)
  if (get && e !== undefined && e.type !== 'string') return WRONGTYPE
  const old = e?.type === 'string' ? e.value : null
  if ((nx && e !== undefined) || (xx && e === undefined)) return get ? old : null
  d.keys.set(k, {
    type: 'string',
    value: argv[2]!,
    expireAt: keepTtl ? e?.expireAt : expireAt,
  })
  return get ? old : OK
}

function hash(
  d: Directory,
  k: string,
  t: number,
  create: boolean,
): Map<string, Buffer> | undefined | ErrorReply {
  const e = live(d, k, t)
  if (e === undefined) {
    if (!create) return undefined
    const fields = new Map<string, Buffer>()
    d.keys.set(k, { type: 'hash', fields, expireAt: undefined })
    return fields
  }
  return e.type === 'hash' ? e.fields : WRONGTYPE
}

function liveKeys(d: Directory, t: number): string[] {
  const out: string[] = []
  for (const [k, e] of d.keys) if (e.expireAt === undefined || e.expireAt > t) out.push(k)
  return out
}

/** SCAN cursor [MATCH p] [COUNT n] [TYPE t]: the cursor is an offset into the sorted keys. */
function scan(d: Directory, argv: readonly Buffer[], t: number): Reply {
  const cursor = parseInteger(argv[1]!)
  if (cursor === undefined || cursor < 0n) return new ErrorReply('ERR invalid cursor')
  let match = (_: string) => true
  let count = 10
  let type: string | undefined
  for (let i = 2; i < argv.length; i += 2) {
    const o = upper(argv[i]!)
    const v = argv[i + 1]
    if (v === undefined) return SYNTAX
    if (o === 'MATCH') match = glob(v.toString('latin1'))
    else if (o === 'COUNT') {
      const n = parseInteger(v)
      if (n === undefined) return NOT_INTEGER
      if (n < 1n) return SYNTAX
      count = Number(n)
    } else if (o === 'TYPE') type = v.toString('latin1').toLowerCase()
    else return SYNTAX
  }
  const all = liveKeys(d, t).sort()
  const from = Number(cursor)
  const page = all.slice(from, from + count)
  const next = from + count >= all.length ? 0 : from + count
  return [
    String(next),
    page
      .filter((k) => match(k) && (type === undefined || d.keys.get(k)!.type === type))
      .map((k) => Buffer.from(k, 'latin1')),
  ]
}

/** Redis's glob: `*`, `?`, `[abc]`, `[^a]`, `[a-z]`, `\x`. */
export function glob(pattern: string): (s: string) => boolean {
  let re = '^'
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!
    if (c === '*') re += '[\\s\\S]*'
    else if (c === '?') re += '[\\s\\S]'
    else if (c === '\\' && i + 1 < pattern.length) re += literal(pattern[++i]!)
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 1)
      if (end < 0) re += '\\['
      else {
        let body = pattern.slice(i + 1, end)
        const negate = body.startsWith('^')
        if (negate) body = body.slice(1)
        re += `[${negate ? '^' : ''}${body.replace(/[\\\]]/g, '\\$&')}]`
        i = end
      }
    } else re += literal(c)
  }
  const r = new RegExp(`${re}$`)
  return (s) => r.test(s)
}

const literal = (c: string) => c.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&')
