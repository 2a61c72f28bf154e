/**
 * Partitions for models whose state is a set of independent objects (keys, registers,
 * queues). Checking each part on its own is sound and complete only when every operation
 * touches one part (P-compositionality; linearizability is local, Herlihy & Wing): an
 * operation that reads or writes several objects (MGET, MSET, RENAME, a transaction) must find
 * all of them in its part, so the objects it touches are merged into one.
 */
import type { Operation } from './model.js'

/**
 * A `partition` for a model whose operations touch one independent object each: the parts in
 * the order their first operation appears in the history.
 */
export function partitionBy<Input, Output>(
  keyOf: (operation: Operation<Input, Output>) => unknown,
): (history: readonly Operation<Input, Output>[]) => Operation<Input, Output>[][] {
  return (history) => {
    const parts = new Map<unknown, Operation<Input, Output>[]>()
    for (const operation of history) {
      const key = keyOf(operation)
      const part = parts.get(key)
      if (part === undefined) parts.set(key, [operation])
      else part.push(operation)
    }
    return [...parts.values()]
  }
}

/**
 * A `partition` for a model whose operations may touch several objects: the objects that some
 * operation touches together end up in one part (the connected components of "touched by one
 * operation"), so no operation is ever split. An operation that touches no object is a part of
 * its own. Parts come in the order their first operation appears in the history.
 */
export function partitionByKeys<Input, Output>(
  keysOf: (operation: Operation<Input, Output>) => readonly unknown[],
): (history: readonly Operation<Input, Output>[]) => Operation<Input, Output>[][] {
  return (history) => {
    // Union-find over the objects, with path halving.
    const parent = new Map<unknown, unknown>()
    const find = (key: unknown): unknown => {
      let at = key
      for (;;) {
        const up = parent.get(at)
        if (up === undefined || up === at) return at
        const grand = parent.get(up)
        if (grand !== undefined) parent.set(at, grand)
        at = grand ?? up
      }
    }
    const keys = history.map((operation) => keysOf(operation))
    for (const touched of keys) {
      if (touched.length === 0) continue
      if (!parent.has(touched[0])) parent.set(touched[0], touched[0])
      const root = find(touched[0])
      for (const key of touched.slice(1)) {
        if (!parent.has(key)) parent.set(key, key)
        const other = find(key)
        if (other !== root) parent.set(other, root)
      }
    }
    const parts = new Map<unknown, Operation<Input, Output>[]>()
    const order: Operation<Input, Output>[][] = []
    history.forEach((operation, index) => {
      const touched = keys[index]!
      if (touched.length === 0) {
        order.push([operation])
        return
      }
      const root = find(touched[0])
      const part = parts.get(root)
      if (part !== undefined) part.push(operation)
      else {
        const fresh = [operation]
        parts.set(root, fresh)
        order.push(fresh)
      }
    })
    return order
  }
}
