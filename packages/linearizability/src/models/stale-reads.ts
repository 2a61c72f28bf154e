/**
 * The weaker guarantee of replicas that serve reads locally: writes are linearizable, and
 * each read returns what the store held at some point of the writes' order — possibly long
 * ago — but no earlier than what its own client did and saw before it.
 *
 * *Reads* are the commands that never change the state (GET, MGET, EXISTS, STRLEN, HGET,
 * HEXISTS, HLEN, HGETALL, and a transaction of only those); *writes* are all the others. The
 * history is split into parts as the key-value model splits it (keys that one operation
 * touches together are one part; with `acrossKeys`, the whole history is one part). A part
 * passes when there is an order W of its writes and, for every read r with a known outcome, a
 * position p(r) in W (0: before every write; i: just after the i-th) such that:
 *
 * 1. W is a linearization of the part's writes alone (real time respected, every known output
 *    the model's; a write with an unknown outcome is in W or not, as it fits);
 * 2. r's output is what the state after the first p(r) writes of W gives — a read of several
 *    keys sees them all at that one point (no torn MGET or read-only transaction);
 * 3. r sees no write that started after it: every write called after r returned comes after
 *    position p(r) in W;
 * 4. monotonic reads: when r1 and r2 are reads by the same client and r1 returned before r2
 *    was called, p(r1) ≤ p(r2);
 * 5. read-your-writes (unless `readYourWrites: false`): every write by r's client that
 *    returned before r was called is among the first p(r) writes of W.
 *
 * Rules 4 and 5 hold within a part: by default a client that read a new x may later read an
 * old y (a different key, never touched together with x); `acrossKeys: true` closes that gap
 * by checking the whole history as one part, so each client moves forward through one order
 * of all writes. Reads with an unknown outcome say nothing and are left out. Staleness is
 * unbounded: a read may return a value from long ago, as long as its client has not seen or
 * written a newer one. Every linearizable history passes.
 *
 * Checked exactly, as one search per part: the reads join the writes' WGL search as
 * state-preserving ("greedy") operations whose predecessors are the client's earlier
 * operations, so the search finds W and the positions together.
 */
import {
  type CheckOptions,
  type CheckResult,
  clockOf,
  describerOf,
  guardedStep,
  type Plan,
  runPlans,
} from '../check.js'
import { LinearizabilityError } from '../errors.js'
import { checkHistory, type Interval, show } from '../history.js'
import type { SearchOp } from '../search.js'
import {
  applyKv,
  isKvRead,
  type KvInput,
  type KvOperation,
  type KvOutput,
  type KvState,
  kvIndependent,
  kvKeys,
  kvModel,
  kvOverwrites,
  kvReadOnly,
  kvStateKey,
  stepKv,
  validateKv,
} from './kv.js'

export interface StaleReadOptions extends CheckOptions {
  /**
   * Rule 5: a client's reads see its own writes that completed before them. Default true;
   * false checks monotonic reads only (a client may not see its own writes yet).
   */
  readonly readYourWrites?: boolean
  /**
   * Rules 4 and 5 across keys: the whole history is one part, so a client's reads never go
   * back in the one order of all writes, whichever keys they read. Default false (per part,
   * which is much cheaper on a long history).
   */
  readonly acrossKeys?: boolean
}

export function checkStaleReads(
  history: readonly KvOperation[],
  options: StaleReadOptions = {},
): CheckResult<KvInput, KvOutput> {
  const clock = clockOf(options)
  const started = clock.now()
  for (const name of ['readYourWrites', 'acrossKeys'] as const)
    if (options[name] !== undefined && typeof options[name] !== 'boolean')
      throw new LinearizabilityError(
        'INVALID_OPTIONS',
        `${name} must be a boolean or absent (got ${show(options[name])})`,
      )
  const intervals = checkHistory(history, validateKv)
  const readYourWrites = options.readYourWrites !== false
  const model = kvModel()
  const describe = describerOf(model, kvStateKey)

  // A read that never returned carries no information.
  const considered = history.flatMap((operation, index) =>
    isKvRead(operation.input) && !intervals[index]!.known ? [] : [operation],
  )
  const indexOf = new Map(history.map((operation, index) => [operation, index]))
  const parts =
    options.acrossKeys === true
      ? considered.length === 0
        ? []
        : [considered]
      : model.partition!(considered)

  const plans = parts.map((part): Plan<KvState> => {
    const members = part.map((operation) => indexOf.get(operation)!)
    const read = members.map((index) => isKvRead(history[index]!.input))
    const after = predecessors(history, intervals, members, read, readYourWrites)
    const ops: SearchOp[] = members.map((index, op) =>
      read[op]
        ? { ...intervals[index]!, greedy: true, after: after[op]! }
        : {
            ...intervals[index]!,
            greedy: false,
            eager:
              intervals[index]!.known &&
              kvReadOnly(history[index]!.input, history[index]!.output, true),
          },
    )
    const candidates = readIndex(history, members, read)
    const input = (op: number) => history[members[op]!]!.input
    return {
      members,
      problem: {
        ops,
        init: model.init(),
        key: kvStateKey,
        greedyCandidates: candidates,
        conflicts: (a, b) => !kvIndependent(input(a), input(b)),
        masks: (later, earlier) => kvOverwrites(input(later), input(earlier)),
        sameCommand: (op) => JSON.stringify(input(op)),
        step: (state, op) => {
          const index = members[op]!
          const operation = history[index]!
          const known = intervals[index]!.known
          return guardedStep(describe, operation, known, () => {
            if (!known) return { ok: true, state: applyKv(state, operation.input).state }
            const stepped = stepKv(state, operation.input, operation.output as KvOutput)
            if (stepped.ok || !read[op]) return stepped
            return new StaleReadRejection(stepped, readYourWrites)
          })
        },
      },
    }
  })
  return runPlans(history, intervals, plans, describe, clock, started)
}

/** Written only if read, like the model's own reasons (the search rejects reads by the many). */
class StaleReadRejection {
  readonly ok = false
  constructor(
    private readonly rejected: { readonly reason?: string },
    private readonly readYourWrites: boolean,
  ) {}

  get reason(): string {
    return `${this.rejected.reason}; a read may be stale, but not older than what its client ${this.readYourWrites ? 'wrote or read' : 'read'} before, nor newer than the writes called before it returned`
  }
}

/**
 * The reads that may fit once a write has taken effect: those of a key the write touched and,
 * among the GETs and MGETs, only those that saw the value that key now holds. A read of other
 * keys fits exactly as well (or as badly) as it did before the write.
 */
function readIndex(
  history: readonly KvOperation[],
  members: readonly number[],
  read: readonly boolean[],
): (state: KvState, lifted: number) => Iterable<readonly number[]> {
  interface KeyReads {
    /** Reads that require the key to hold this string (`=` + value) or to be absent (`nil`). */
    readonly byValue: Map<string, number[]>
    /** Reads of the key that any value may fit. */
    readonly any: number[]
  }
  const byKey = new Map<string, KeyReads>()
  const reads: number[] = []
  const at = (key: string): KeyReads => {
    let entry = byKey.get(key)
    if (entry === undefined) byKey.set(key, (entry = { byValue: new Map(), any: [] }))
    return entry
  }
  const need = (key: string, output: unknown, op: number): void => {
    const reads = at(key)
    const value = output === null ? 'nil' : typeof output === 'string' ? `=${output}` : undefined
    if (value === undefined) reads.any.push(op)
    else {
      const bucket = reads.byValue.get(value)
      if (bucket === undefined) reads.byValue.set(value, [op])
      else bucket.push(op)
    }
  }
  const writtenKeys: (readonly string[] | undefined)[] = []
  members.forEach((index, op) => {
    const { input, output } = history[index]!
    if (!read[op]) {
      writtenKeys[op] = [...new Set(kvKeys(input))]
      return
    }
    reads.push(op)
    if (input.op === 'get') need(input.key, output, op)
    else if (input.op === 'mget' && Array.isArray(output))
      // nil in an MGET also fits a key holding a hash: only strings pin the value.
      input.keys.forEach((key, position) => {
        const seen = output[position]
        if (typeof seen === 'string') need(key, seen, op)
        else at(key).any.push(op)
      })
    else for (const key of new Set(kvKeys(input))) at(key).any.push(op)
  })
  return function* (state, lifted) {
    if (lifted === -1) {
      yield reads
      return
    }
    for (const key of writtenKeys[lifted] ?? []) {
      const entry = byKey.get(key)
      if (entry === undefined) continue
      const value = state.get(key)
      const bucket = entry.byValue.get(
        value === undefined ? 'nil' : typeof value === 'string' ? `=${value}` : '#',
      )
      if (bucket !== undefined) yield bucket
      yield entry.any
    }
  }
}

/**
 * For each read of a part, the operations it must come after (rules 4 and 5): the client's
 * earlier reads (and writes, with `readYourWrites`) that returned before it was called — only
 * the latest ones, since the search already orders those among themselves. Among the client's
 * operations `S` that returned before `r` was called, `s` is implied by another when some `s'`
 * in `S` was called after `s` returned (`s'` is then after `s`: by real time when `s'` is a
 * write, by its own predecessors when it is a read), so the ones to keep are those that
 * returned at or after the latest call in `S`.
 */
function predecessors(
  history: readonly KvOperation[],
  intervals: readonly Interval[],
  members: readonly number[],
  read: readonly boolean[],
  readYourWrites: boolean,
): (readonly number[])[] {
  const byClient = new Map<string | number, number[]>()
  members.forEach((index, op) => {
    if (!intervals[index]!.known) return
    if (!readYourWrites && !read[op]) return
    const client = history[index]!.clientId
    const ops = byClient.get(client)
    if (ops === undefined) byClient.set(client, [op])
    else ops.push(op)
  })
  const callOf = (op: number) => intervals[members[op]!]!.call
  const returnOf = (op: number) => intervals[members[op]!]!.return
  const result: (readonly number[])[] = members.map(() => [])
  for (const ops of byClient.values()) {
    ops.sort((a, b) => returnOf(a) - returnOf(b))
    const latestCall: number[] = []
    for (const op of ops)
      latestCall.push(Math.max(latestCall.at(-1) ?? Number.NEGATIVE_INFINITY, callOf(op)))
    for (const op of ops) {
      if (!read[op]) continue
      // How many of the client's operations returned before this read was called.
      let low = 0
      let high = ops.length
      while (low < high) {
        const middle = (low + high) >>> 1
        if (returnOf(ops[middle]!) < callOf(op)) low = middle + 1
        else high = middle
      }
      if (low === 0) continue
      const latest = latestCall[low - 1]!
      const after: number[] = []
      for (let at = low - 1; at >= 0 && returnOf(ops[at]!) >= latest; at--) after.push(ops[at]!)
      result[op] = after
    }
  }
  return result
}
