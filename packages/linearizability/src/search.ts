/**
 * The Wing–Gong–Lowe search over one partition, iterative (an explicit stack, so a history of
 * any length cannot overflow the call stack) and memoised as in Lowe's improvement.
 *
 * **WGL.** The history is a doubly linked list of call and return entries in time order (calls
 * before returns at the same instant: such operations are concurrent). The operations whose
 * calls come before the first return entry are exactly those that may take effect next (the
 * *candidates*); the search tries them in turn, and on success *lifts* the operation (unlinks
 * its entries, dancing-links style) and starts again from the head. When every candidate has
 * failed, the operation returning at that first return entry cannot be linearized after the
 * current prefix: pop the last choice, *unlift* it (relink its entries, in the reverse order
 * of the lifts, which the stack gives) and try the next candidate after it. Lowe's cache keeps
 * every configuration reached: arriving at one again cannot lead anywhere new.
 *
 * **Unknown outcomes** return at +∞: a call entry only, in a list of its own; they never block
 * anyone and need not be linearized at all — the search succeeds as soon as every operation
 * with a known outcome is. At each point the candidates with known outcomes are tried first,
 * the unknown ones last (the order changes what is found first, never whether).
 *
 * Every rule below cuts the search without losing a linearization: each comes with a rewrite
 * that turns any linearization into one the rule allows.
 *
 * - *Eager* operations (a known outcome that leaves the state as it is wherever it fits: a
 *   GET, a SET NX that returned nil) are taken as soon as one fits, without trying the others
 *   at that point; if that fails, the point fails. Rewrite: move it to the front — it is a
 *   candidate, so all it must follow is in; it changes no state, so what came between is
 *   unaffected. This keeps reads from branching.
 * - With `conflicts` (operations that do not conflict commute: either order leaves the same
 *   state and fits alike), each unknown outcome u that is taken must be followed by a
 *   *consumer* (an operation conflicting with it) before any known operation. Rewrite: move u
 *   later past the first known operation before its consumer (it commutes with u, and so do the
 *   unknown ones in between); an u with no consumer goes to the end and is dropped. So u is
 *   tried only if it conflicts with another candidate (its consumer is one, or comes before
 *   the next known one, which is), and once taken it is *pending*: the next known operation
 *   must conflict with every pending one. An unknown outcome of another key is never tried.
 * - With `masks`: an unknown outcome is never followed directly by an operation that undoes
 *   all it did and replies alike either way (a SET of the key after it). Rewrite: drop the
 *   unknown one.
 * - With `sameCommand`: unknown outcomes of one command (*twins*: INCR x, INCR x) are taken in
 *   the order of their calls. Rewrite: trade their identities.
 * - The cache compares configurations with the same known set, state and last unknown outcome
 *   by *dominance*: one that took no unknown outcome, and has none pending, that the other has
 *   not can do all the other can; when it was seen, the other is cut.
 *
 * **Greedy** operations (the stale-read check's reads) never change the state and carry their
 * own predecessors (`after`) instead of a call entry: each is lifted as soon as its
 * predecessors are and the state matches it (the eager rewrite again), and undone with the
 * choice that led to it. Their return entries still block what was called after them. A
 * greedy read may be an unknown outcome's consumer (it ends the pending); the consumer test of
 * a candidate does not look at them, so with greedy operations it is not made.
 * Invariant (after each closure): every greedy operation whose predecessors are linearized and
 * that is not itself linearized does not fit the current state.
 */

import { LinearizedSet } from './linearized-set.js'
import type { StepResult } from './model.js'

export interface SearchOp {
  readonly call: number
  /** `Infinity` when the outcome is unknown. */
  readonly return: number
  readonly known: boolean
  /** Lifted by the closure rather than searched; see the file comment. Needs `known`. */
  readonly greedy: boolean
  /**
   * Taken as soon as it fits, without branching; see the file comment. Needs `known`, and
   * that every step of it that fits leaves the state as it was.
   */
  readonly eager?: boolean
  /** For a greedy operation: the operations that must be linearized before it. */
  readonly after?: readonly number[]
}

export interface SearchProblem<State> {
  readonly ops: readonly SearchOp[]
  readonly init: State
  step(state: State, op: number): StepResult<State>
  key(state: State): string
  /**
   * False only when the two operations commute (see the file comment). Without it every pair
   * conflicts, and the cuts for unknown outcomes do nothing.
   */
  conflicts?(a: number, b: number): boolean
  /**
   * True only when `later` right after the unknown outcome `earlier` leaves the same state as
   * `later` alone, from any state, and fits (with its output) exactly when it would alone.
   * Used only with `conflicts`.
   */
  masks?(later: number, earlier: number): boolean
  /**
   * Equal for two unknown outcomes exactly when they are the same command (either may stand for
   * the other). Used only with `conflicts`.
   */
  sameCommand?(op: number): string
  /**
   * The greedy operations that may fit `state` now that operation `lifted` has taken effect
   * (`-1`: at the start, when all of them may): a superset will do, but every greedy operation
   * that did not fit before `lifted` and fits after it must be in it.
   */
  greedyCandidates?(state: State, lifted: number): Iterable<readonly number[]>
}

/** Where the search got furthest before it had to turn back. */
export interface Furthest<State> {
  /** The linearized prefix, in order. */
  readonly order: readonly number[]
  readonly state: State
  /** The operation whose return was reached while it could not be linearized. */
  readonly blocked: number
  /** The other operations that could have come next. */
  readonly candidates: readonly number[]
}

export type SearchOutcome<State> = { readonly steps: number; readonly cached: number } & (
  | { readonly result: 'ok'; readonly order: readonly number[] }
  | { readonly result: 'illegal'; readonly furthest: Furthest<State> }
  | { readonly result: 'unknown' }
)

/** An immutable list of the linearized operations, newest first: a snapshot costs nothing. */
interface Prefix {
  readonly op: number
  readonly before: Prefix | undefined
}

interface Frame<State> {
  readonly op: number
  readonly state: State
  readonly prefix: Prefix | undefined
  /** The length of the greedy log before this choice. */
  readonly greedyMark: number
  /** The first return entry when this choice was made (for an unknown outcome's choice). */
  readonly window: number
  /** An eager choice: when it fails, the point it was made at fails. */
  readonly forced: boolean
  /** The unknown outcomes pending before this choice. */
  readonly pending: readonly number[]
}

/** What the cache keeps for one (known set, state): the unknown outcomes in, and pending. */
interface Seen {
  readonly taken: Uint32Array
  readonly pending: Uint32Array
}

function subset(a: Uint32Array, b: Uint32Array): boolean {
  for (let word = 0; word < a.length; word++) if ((a[word]! & ~b[word]!) >>> 0 !== 0) return false
  return true
}

const NONE = -1
/** The head of the list of known calls and of all returns. */
const HEAD = 0
/** The head of the list of the calls of operations with unknown outcomes. */
const UNKNOWN_HEAD = 1
/** How many loop turns between two looks at the clock. */
const CLOCK_EVERY = 1024

export function search<State>(
  problem: SearchProblem<State>,
  deadline: number,
  now: () => number,
): SearchOutcome<State> {
  const ops = problem.ops
  const count = ops.length

  // Bits: known operations in call order, then the unknown ones in call order.
  const byCall = Array.from({ length: count }, (_, op) => op).sort(
    (a, b) => ops[a]!.call - ops[b]!.call || a - b,
  )
  const bit = new Int32Array(count)
  let knownCount = 0
  let unknownCount = 0
  for (const op of byCall) if (ops[op]!.known) bit[op] = knownCount++
  const linearized = new LinearizedSet(knownCount, count - knownCount)
  for (const op of byCall) if (!ops[op]!.known) bit[op] = linearized.unknownBit(unknownCount++)

  // Entries: a call entry for every searched operation, a return entry for every known one.
  const entryOp: number[] = []
  const entryIsCall: boolean[] = []
  const entryTime: number[] = []
  for (let op = 0; op < count; op++) {
    const { call, return: ret, known, greedy } = ops[op]!
    if (!greedy) {
      entryOp.push(op)
      entryIsCall.push(true)
      entryTime.push(call)
    }
    if (known) {
      entryOp.push(op)
      entryIsCall.push(false)
      entryTime.push(ret)
    }
  }
  const sorted = Array.from({ length: entryOp.length }, (_, entry) => entry).sort(
    (a, b) =>
      entryTime[a]! - entryTime[b]! ||
      Number(entryIsCall[b]) - Number(entryIsCall[a]) ||
      entryOp[a]! - entryOp[b]!,
  )
  // Nodes 0 and 1 are the heads of the two lists; the entries follow, in time order.
  const nodes = sorted.length + 2
  const next = new Int32Array(nodes).fill(NONE)
  const prev = new Int32Array(nodes).fill(NONE)
  const nodeOp = new Int32Array(nodes).fill(NONE)
  const nodeIsCall = new Uint8Array(nodes)
  const nodeTime = new Float64Array(nodes)
  const callNode = new Int32Array(count).fill(NONE)
  const returnNode = new Int32Array(count).fill(NONE)
  const tail = [HEAD, UNKNOWN_HEAD]
  for (let index = 0; index < sorted.length; index++) {
    const node = index + 2
    const entry = sorted[index]!
    const op = entryOp[entry]!
    nodeOp[node] = op
    nodeTime[node] = entryTime[entry]!
    if (entryIsCall[entry]) {
      nodeIsCall[node] = 1
      callNode[op] = node
    } else returnNode[op] = node
    const list = entryIsCall[entry] && !ops[op]!.known ? 1 : 0
    const last = tail[list]!
    next[last] = node
    prev[node] = last
    tail[list] = node
  }

  const unlink = (node: number): void => {
    next[prev[node]!] = next[node]!
    if (next[node] !== NONE) prev[next[node]!] = prev[node]!
  }
  const relink = (node: number): void => {
    next[prev[node]!] = node
    if (next[node] !== NONE) prev[next[node]!] = node
  }

  // Greedy operations: how many of their predecessors are still out, and who waits on whom.
  const waitingOn = new Int32Array(count)
  const waiters: number[][] = Array.from({ length: count }, () => [])
  const hasGreedy = ops.some((op) => op.greedy)
  for (let op = 0; op < count; op++) {
    const after = ops[op]!.greedy ? ops[op]!.after : undefined
    if (after === undefined) continue
    waitingOn[op] = after.length
    for (const predecessor of after) waiters[predecessor]!.push(op)
  }
  const isEager = new Uint8Array(count)
  for (let op = 0; op < count; op++)
    if (ops[op]!.eager === true && ops[op]!.known && !ops[op]!.greedy) isEager[op] = 1
  const hasEager = isEager.includes(1)
  const isLinearized = new Uint8Array(count)
  const greedyLog: number[] = []

  let remainingKnown = knownCount
  let prefix: Prefix | undefined
  let state = problem.init
  let steps = 0

  const lift = (op: number): void => {
    isLinearized[op] = 1
    linearized.add(bit[op]!)
    if (ops[op]!.known) remainingKnown--
    if (callNode[op] !== NONE) unlink(callNode[op]!)
    if (returnNode[op] !== NONE) unlink(returnNode[op]!)
    prefix = { op, before: prefix }
  }
  const unlift = (op: number): void => {
    isLinearized[op] = 0
    linearized.delete(bit[op]!)
    if (ops[op]!.known) remainingKnown++
    if (returnNode[op] !== NONE) relink(returnNode[op]!)
    if (callNode[op] !== NONE) relink(callNode[op]!)
    for (const waiter of waiters[op]!) waitingOn[waiter]!++
  }
  // Lifts every greedy operation that fits the current state, and those they free in turn.
  const closure = (justLifted: number): void => {
    const queue: number[] = []
    const release = (op: number): void => {
      for (const waiter of waiters[op]!)
        if (--waitingOn[waiter]! === 0 && isLinearized[waiter] === 0) queue.push(waiter)
    }
    if (justLifted !== NONE) release(justLifted)
    for (const bucket of problem.greedyCandidates?.(state, justLifted) ?? [])
      for (const op of bucket) if (isLinearized[op] === 0 && waitingOn[op] === 0) queue.push(op)
    while (queue.length > 0) {
      const op = queue.pop()!
      if (isLinearized[op] === 1 || waitingOn[op] !== 0) continue
      steps++
      if (!problem.step(state, op).ok) continue
      lift(op)
      greedyLog.push(op)
      release(op)
    }
  }

  if (hasGreedy) closure(NONE)
  const stack: Frame<State>[] = []
  // Without unknown outcomes a (known set, state) key is all there is to compare.
  const cache = new Set<string>()
  const seen = new Map<string, Seen[]>()
  let seenCount = 0
  const unknownWords = Math.ceil(unknownCount / 32)
  const unknownBase = knownCount > 0 ? Math.ceil(knownCount / 32) * 32 : 0
  const conflicts = problem.conflicts
  const cutUnknown = conflicts !== undefined && unknownCount > 0
  let pending: readonly number[] = []
  // Twins: the unknown outcome of the same command called just before, which must be in first.
  const twin = new Int32Array(count).fill(NONE)
  if (cutUnknown && problem.sameCommand !== undefined) {
    const last = new Map<string, number>()
    for (const op of byCall) {
      if (ops[op]!.known) continue
      const command = problem.sameCommand(op)
      const before = last.get(command)
      if (before !== undefined) twin[op] = before
      last.set(command, op)
    }
  }
  const masks = cutUnknown ? problem.masks : undefined
  /** The operation linearized last, when its outcome is unknown (it may be masked). */
  const lastUnknown = (): number =>
    prefix !== undefined && !ops[prefix.op]!.known ? prefix.op : NONE
  /** Whether `op` right after the last (unknown) outcome would make that one pointless. */
  const masksLast = (op: number): boolean => {
    if (masks === undefined) return false
    const last = lastUnknown()
    return last !== NONE && masks(op, last)
  }
  const admissible = (op: number): boolean => {
    for (const other of pending) if (!conflicts!(op, other)) return false
    return true
  }
  const pendingAfter = (op: number): readonly number[] => {
    const left = pending.filter((other) => !conflicts!(op, other))
    return ops[op]!.known ? left : [...left, op]
  }
  let furthest: (Omit<Furthest<State>, 'order'> & { prefix: Prefix | undefined }) | undefined
  let furthestDepth = -1
  let turns = 0
  let node = next[HEAD]!
  // NONE while the known candidates are tried; then the first return entry, while the unknown
  // ones (called before it) are.
  let window = NONE
  // At a point just reached: look for an eager candidate that fits before branching.
  let fresh = hasEager

  /** Whether the configuration after `op` was seen (or one dominating it); records it if not. */
  const seenBefore = (op: number, after: State, nextPending: readonly number[]): boolean => {
    linearized.add(bit[op]!)
    if (unknownCount === 0) {
      const key = `${linearized.knownKey()}${problem.key(after)}`
      linearized.delete(bit[op]!)
      if (cache.has(key)) return true
      cache.add(key)
      return false
    }
    // The last unknown outcome decides which unknown outcomes may come next (`masks`).
    const context = masks === undefined ? '' : `${ops[op]!.known ? NONE : op};`
    const key = `${context}${linearized.knownKey()}${problem.key(after)}`
    const taken = linearized.unknownWords()
    linearized.delete(bit[op]!)
    const pendingWords = new Uint32Array(unknownWords)
    for (const other of nextPending) {
      const rank = bit[other]! - unknownBase
      pendingWords[rank >>> 5] = (pendingWords[rank >>> 5]! | (1 << (rank & 31))) >>> 0
    }
    const list = seen.get(key)
    if (list !== undefined) {
      for (const earlier of list)
        if (subset(earlier.taken, taken) && subset(earlier.pending, pendingWords)) return true
      list.push({ taken, pending: pendingWords })
    } else seen.set(key, [{ taken, pending: pendingWords }])
    seenCount++
    return false
  }

  /** Takes `op` (its step gave `after`) unless that configuration was seen before. */
  const choose = (op: number, after: State, forced: boolean): boolean => {
    const nextPending = cutUnknown ? pendingAfter(op) : pending
    if (seenBefore(op, after, nextPending)) return false
    stack.push({ op, state, prefix, greedyMark: greedyLog.length, window, forced, pending })
    pending = nextPending
    state = after
    const mark = greedyLog.length
    lift(op)
    if (hasGreedy) {
      closure(op)
      // A greedy read lifted now that conflicts with a pending unknown outcome consumes it.
      if (pending.length > 0 && greedyLog.length > mark) {
        const lifted = greedyLog.slice(mark)
        pending = pending.filter((other) => !lifted.some((read) => conflicts!(read, other)))
      }
    }
    node = next[HEAD]!
    window = NONE
    fresh = hasEager
    return true
  }
  /** Whether the unknown outcome `op` conflicts with another candidate (in the unknown phase). */
  const hasConsumer = (op: number): boolean => {
    for (let at = next[HEAD]!; at !== window; at = next[at]!)
      if (conflicts!(op, nodeOp[at]!)) return true
    for (
      let at = next[UNKNOWN_HEAD]!;
      at !== NONE && nodeTime[at]! <= nodeTime[window]!;
      at = next[at]!
    )
      if (at !== callNode[op] && conflicts!(op, nodeOp[at]!)) return true
    return false
  }
  /** The first return entry: every known operation left has one, so there is one. */
  const firstReturn = (): number => {
    let at = next[HEAD]!
    while (at !== NONE && nodeIsCall[at] === 1) at = next[at]!
    if (at === NONE) throw new Error('linearizability: the search ran past the last return entry')
    return at
  }

  for (;;) {
    if (remainingKnown === 0)
      return { result: 'ok', order: orderOf(prefix), steps, cached: cache.size + seenCount }
    if (++turns % CLOCK_EVERY === 0 && now() > deadline)
      return { result: 'unknown', steps, cached: cache.size + seenCount }

    let turnBack = false
    if (fresh) {
      fresh = false
      for (let at = next[HEAD]!; at !== NONE && nodeIsCall[at] === 1; at = next[at]!) {
        const op = nodeOp[at]!
        if (isEager[op] === 0 || (cutUnknown && (!admissible(op) || masksLast(op)))) continue
        steps++
        const stepped = problem.step(state, op)
        if (!stepped.ok) continue
        // The only way on from here; if it was seen before, this point fails.
        if (!choose(op, stepped.state, true)) turnBack = true
        break
      }
      if (!turnBack) continue
      window = firstReturn()
    } else if (window === NONE && node !== NONE && nodeIsCall[node] === 0) {
      // The first return entry: the known candidates are done, the unknown ones come next.
      window = node
      node = next[UNKNOWN_HEAD]!
      continue
    } else if (window === NONE && node === NONE) {
      window = firstReturn() // throws: the list cannot end before a return entry
    } else if (node !== NONE && (window === NONE || nodeTime[node]! <= nodeTime[window]!)) {
      const op = nodeOp[node]!
      // An admissible eager candidate here did not fit (the fresh look would have taken it).
      const tried =
        window === NONE
          ? isEager[op] === 0 && (!cutUnknown || (admissible(op) && !masksLast(op)))
          : !cutUnknown ||
            ((twin[op] === NONE || isLinearized[twin[op]!] === 1) &&
              !masksLast(op) &&
              (hasGreedy || hasConsumer(op)))
      if (tried) {
        steps++
        const stepped = problem.step(state, op)
        if (stepped.ok && choose(op, stepped.state, false)) continue
      }
      node = next[node]!
      continue
    }

    // Every candidate before the first return entry failed: turn back.
    const depth = knownCount - remainingKnown
    if (depth > furthestDepth) {
      // Keeping the prefix costs nothing (it is immutable); it becomes an array only at the end.
      furthestDepth = depth
      const candidates: number[] = []
      for (let at = next[HEAD]!; at !== window && at !== NONE; at = next[at]!)
        candidates.push(nodeOp[at]!)
      for (let at = next[UNKNOWN_HEAD]!; at !== NONE; at = next[at]!) {
        if (nodeTime[at]! > nodeTime[window]!) break
        candidates.push(nodeOp[at]!)
      }
      furthest = { prefix, state, blocked: nodeOp[window]!, candidates }
    }
    // Undo choices until one that has siblings left to try.
    let frame: Frame<State> | undefined
    for (;;) {
      frame = stack.pop()
      if (frame === undefined) break
      while (greedyLog.length > frame.greedyMark) unlift(greedyLog.pop()!)
      unlift(frame.op)
      state = frame.state
      prefix = frame.prefix
      pending = frame.pending
      if (!frame.forced) break
    }
    if (frame === undefined) {
      const { prefix: furthestPrefix, ...rest } = furthest!
      const order = orderOf(furthestPrefix)
      return {
        result: 'illegal',
        furthest: { order, ...rest },
        steps,
        cached: cache.size + seenCount,
      }
    }
    window = frame.window
    node = next[callNode[frame.op]!]!
  }
}

function orderOf(prefix: Prefix | undefined): number[] {
  const order: number[] = []
  for (let at = prefix; at !== undefined; at = at.before) order.push(at.op)
  return order.reverse()
}
