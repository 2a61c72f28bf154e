/**
 * Brute-force oracles, straight from the definitions, for histories of a handful of
 * operations: every order is tried, nothing is memoised, nothing is partitioned (unless the
 * definition itself is per part).
 */
import type { KvOperation } from '../../src/index.js'
import { keysOf, readOnly, redis, type Store, sameOutput } from './redis-spec.js'

const known = (op: KvOperation) => op.return !== undefined && op.return !== Number.POSITIVE_INFINITY
const returnOf = (op: KvOperation) => (known(op) ? op.return! : Number.POSITIVE_INFINITY)

/**
 * Linearizable: some order of all the known operations and some of the unknown ones, each
 * after every operation that returned before its call, reproduces every known output.
 */
export function bruteForceLinearizable(history: readonly KvOperation[]): boolean {
  const placed = new Array<boolean>(history.length).fill(false)
  const remaining = () => history.some((op, i) => known(op) && !placed[i])
  const visit = (store: Store): boolean => {
    if (!remaining()) return true
    for (const [i, op] of history.entries()) {
      if (placed[i]) continue
      if (history.some((other, j) => !placed[j] && j !== i && returnOf(other) < op.call)) continue
      const { output, store: after } = redis(store, op.input)
      if (known(op) && !sameOutput(op.input, output, op.output)) continue
      placed[i] = true
      const found = visit(after)
      placed[i] = false
      if (found) return true
    }
    return false
  }
  return visit(new Map())
}

/** Every linearization of the writes alone (unknown ones in or out), with the store after each prefix. */
function writeOrders(writes: readonly KvOperation[]): { order: KvOperation[]; stores: Store[] }[] {
  const result: { order: KvOperation[]; stores: Store[] }[] = []
  const placed = new Array<boolean>(writes.length).fill(false)
  const order: KvOperation[] = []
  const stores: Store[] = [new Map()]
  const visit = (store: Store): void => {
    if (!writes.some((op, i) => known(op) && !placed[i]))
      result.push({ order: [...order], stores: [...stores] })
    for (const [i, op] of writes.entries()) {
      if (placed[i]) continue
      if (writes.some((other, j) => !placed[j] && j !== i && returnOf(other) < op.call)) continue
      const { output, store: after } = redis(store, op.input)
      if (known(op) && !sameOutput(op.input, output, op.output)) continue
      placed[i] = true
      order.push(op)
      stores.push(after)
      visit(after)
      order.pop()
      stores.pop()
      placed[i] = false
    }
  }
  visit(new Map())
  return result
}

/** Groups of operations whose keys are connected, found by merging until nothing changes. */
function groups(history: readonly KvOperation[]): KvOperation[][] {
  let sets = history.map((op) => ({ keys: new Set(keysOf(op.input)), ops: [op] }))
  for (let merged = true; merged; ) {
    merged = false
    outer: for (let a = 0; a < sets.length; a++)
      for (let b = a + 1; b < sets.length; b++)
        if ([...sets[a]!.keys].some((key) => sets[b]!.keys.has(key))) {
          sets[a] = {
            keys: new Set([...sets[a]!.keys, ...sets[b]!.keys]),
            ops: [...sets[a]!.ops, ...sets[b]!.ops],
          }
          sets = sets.filter((_, at) => at !== b)
          merged = true
          break outer
        }
  }
  return sets.map((set) => set.ops)
}

/** The stale-read guarantee of the README, rule by rule, one part at a time. */
export function bruteForceStaleReads(
  history: readonly KvOperation[],
  options: { readYourWrites: boolean; acrossKeys: boolean },
): boolean {
  const considered = history.filter((op) => known(op) || !readOnly(op.input))
  const parts = options.acrossKeys ? [considered] : groups(considered)
  return parts.every((ops) => {
    const writes = ops.filter((op) => !readOnly(op.input))
    const reads = ops.filter((op) => readOnly(op.input)).sort((a, b) => a.call - b.call)
    return writeOrders(writes).some(({ order, stores }) => {
      const position = new Map<KvOperation, number>()
      for (const read of reads) {
        // Rule 3: no write called after the read returned.
        let upper = order.findIndex((write) => write.call > read.return!)
        if (upper === -1) upper = order.length
        // Rule 4 (and 5): after the client's earlier reads (and completed writes). The reads
        // are taken in call order, so the earlier ones already have their (lowest) position.
        let lower = 0
        for (const earlier of reads)
          if (earlier.clientId === read.clientId && earlier.return! < read.call)
            lower = Math.max(lower, position.get(earlier)!)
        if (options.readYourWrites)
          order.forEach((write, at) => {
            if (write.clientId === read.clientId && known(write) && write.return! < read.call)
              lower = Math.max(lower, at + 1)
          })
        let found = -1
        for (let p = lower; p <= upper && found === -1; p++)
          // Rule 2: what the store after the first p writes answers.
          if (sameOutput(read.input, redis(stores[p]!, read.input).output, read.output)) found = p
        if (found === -1) return false
        position.set(read, found)
      }
      return true
    })
  })
}
