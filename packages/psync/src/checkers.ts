/**
 * `@consul/psync/checkers` — invariant checkers for `@consul/sim` runs of Psync. They read
 * the `trace.*` records Psync raises (layer `psync`):
 *
 * - `causalOrder`: every incarnation delivers a message only after its deps (a dep may
 *   instead have been delivered by an earlier incarnation of the node and pruned since);
 * - `atomicDelivery`: a message delivered anywhere is delivered by every node up at the end
 *   (run it after a quiet, healed tail). A sender's own delivery counts only if that
 *   incarnation never crashed: a message not yet durable when its sender crashed was
 *   never sent;
 * - `stabilitySafety`: a message some node called stable is delivered by every node up at
 *   the end;
 * - `waveAgreement`: every node that saw wave i complete saw the same message ids in it;
 * - `noCreation` / `noDuplication` from `@consul/sim` apply as they are.
 */
import type { Checker, History, HistoryRecord, Violation } from '@consul/sim'

const LAYER = 'psync'

function deliveries(history: History): HistoryRecord[] {
  return history.records.filter((r) => r.kind === 'delivered' && r.layer === LAYER)
}

export const causalOrder: Checker = {
  name: 'psync-causal-order',
  check(history) {
    const out: Violation[] = []
    const ever = new Map<string, Set<string>>() // node → ids delivered in any incarnation so far
    const current = new Map<string, Set<string>>() // node/incarnation → ids
    for (const r of deliveries(history)) {
      const k = `${r.node}\u0000${r.incarnation}\u0000${r.group}`
      const nk = `${r.node}\u0000${r.group}`
      let mine = current.get(k)
      if (mine === undefined) current.set(k, (mine = new Set()))
      let before = ever.get(nk)
      if (before === undefined) ever.set(nk, (before = new Set()))
      for (const dep of r.deps ?? []) {
        if (!mine.has(dep) && !(r.incarnation > 0 && before.has(dep))) {
          out.push({
            checker: this.name,
            node: r.node,
            time: r.time,
            message: `${r.node} (incarnation ${r.incarnation}) delivered ${r.id} before its predecessor ${dep}`,
          })
        }
      }
      mine.add(r.id!)
      before.add(r.id!)
    }
    return out
  },
}

export const atomicDelivery: Checker = {
  name: 'psync-atomic-delivery',
  check(history, context) {
    const crashedIncarnations = new Set(
      history.of('crash').map((r) => `${r.node}\u0000${r.incarnation}`),
    )
    const up = history.upAtEnd(context.nodes)
    const deliveredBy = new Map<string, Set<string>>() // group/id → nodes
    const counts = new Set<string>() // group/id that really went out
    for (const r of deliveries(history)) {
      const key = `${r.group}\u0000${r.id}`
      let nodes = deliveredBy.get(key)
      if (nodes === undefined) deliveredBy.set(key, (nodes = new Set()))
      nodes.add(r.node)
      const sender = r.from
      if (r.node !== sender || !crashedIncarnations.has(`${r.node}\u0000${r.incarnation}`))
        counts.add(key)
    }
    const out: Violation[] = []
    for (const key of counts) {
      const nodes = deliveredBy.get(key)!
      const lacking = up.filter((n) => !nodes.has(n))
      if (lacking.length > 0) {
        const [group, id] = key.split('\u0000')
        out.push({
          checker: this.name,
          message: `${id} in ${group} was delivered by ${[...nodes].join(',')} but never by ${lacking.join(',')}`,
        })
      }
    }
    return out
  },
}

export const stabilitySafety: Checker = {
  name: 'psync-stability-safety',
  check(history, context) {
    const up = history.upAtEnd(context.nodes)
    const deliveredBy = new Map<string, Set<string>>()
    for (const r of deliveries(history)) {
      const key = `${r.group}\u0000${r.id}`
      let nodes = deliveredBy.get(key)
      if (nodes === undefined) deliveredBy.set(key, (nodes = new Set()))
      nodes.add(r.node)
    }
    const out: Violation[] = []
    const reported = new Set<string>()
    for (const r of history.records) {
      if (r.kind !== 'stable' || r.layer !== LAYER) continue
      const key = `${r.group}\u0000${r.id}`
      if (reported.has(key)) continue
      const nodes = deliveredBy.get(key) ?? new Set()
      const lacking = up.filter((n) => !nodes.has(n))
      if (lacking.length > 0) {
        reported.add(key)
        out.push({
          checker: this.name,
          node: r.node,
          time: r.time,
          message: `${r.node} called ${r.id} stable, but ${lacking.join(',')} never delivered it`,
        })
      }
    }
    return out
  },
}

export const waveAgreement: Checker = {
  name: 'psync-wave-agreement',
  check(history) {
    const first = new Map<string, HistoryRecord>()
    const out: Violation[] = []
    for (const r of history.records) {
      if (r.kind !== 'wave' || r.layer !== LAYER) continue
      const key = `${r.group}\u0000${r.depth}`
      const seen = first.get(key)
      if (seen === undefined) {
        first.set(key, r)
        continue
      }
      const a = (seen.ids ?? []).join(' ')
      const b = (r.ids ?? []).join(' ')
      if (a !== b) {
        out.push({
          checker: this.name,
          node: r.node,
          time: r.time,
          message: `wave ${r.depth} of ${r.group}: ${seen.node} saw [${a}], ${r.node} saw [${b}]`,
        })
      }
    }
    return out
  },
}

/** Every Psync checker. Add `noCreation` and `noDuplication` from `@consul/sim` beside them. */
export const psyncCheckers: readonly Checker[] = [
  causalOrder,
  atomicDelivery,
  stabilitySafety,
  waveAgreement,
]
