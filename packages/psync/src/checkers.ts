/**
 * `@consul/psync/checkers` — invariant checkers for `@consul/sim` runs of Psync. They read
 * the `trace.*` records Psync raises (layer `psync`):
 *
 * - `causalOrder`: every incarnation delivers a message only after its deps (a dep may
 *   instead have been delivered by an earlier incarnation of the node and pruned since — then
 *   this incarnation never delivers it at all; delivering it later is a violation);
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
    const records = deliveries(history)
    // Every id each incarnation delivers at some point: a dep it delivers only later was not
    // pruned, so an earlier incarnation's delivery does not excuse the order.
    const eventually = new Map<string, Set<string>>()
    for (const r of records) {
      const k = `${r.node}\u0000${r.incarnation}\u0000${r.group}`
      let ids = eventually.get(k)
      if (ids === undefined) eventually.set(k, (ids = new Set()))
      ids.add(r.id!)
    }
    const ever = new Map<string, Set<string>>() // node → ids delivered in any incarnation so far
    const current = new Map<string, Set<string>>() // node/incarnation → ids
    for (const r of records) {
      const k = `${r.node}\u0000${r.incarnation}\u0000${r.group}`
      const nk = `${r.node}\u0000${r.group}`
      let mine = current.get(k)
      if (mine === undefined) current.set(k, (mine = new Set()))
      let before = ever.get(nk)
      if (before === undefined) ever.set(nk, (before = new Set()))
      const later = eventually.get(k)!
      for (const dep of r.deps ?? []) {
        if (mine.has(dep)) continue
        if (r.incarnation > 0 && before.has(dep) && !later.has(dep)) continue
        out.push({
          checker: this.name,
          node: r.node,
          time: r.time,
          message: `${r.node} (incarnation ${r.incarnation}) delivered ${r.id} before its predecessor ${dep}`,
        })
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

/** The sender of a `sender:seq` id. */
function senderOf(id: string): string {
  return id.slice(0, id.lastIndexOf(':'))
}

export const stabilitySafety: Checker = {
  name: 'psync-stability-safety',
  check(history, context) {
    const up = history.upAtEnd(context.nodes)
    // When each node first delivered each message (any incarnation).
    const firstDelivery = new Map<string, number>() // group/id/node → time
    const deliveredBy = new Map<string, Set<string>>()
    for (const r of deliveries(history)) {
      const key = `${r.group}\u0000${r.id}`
      let nodes = deliveredBy.get(key)
      if (nodes === undefined) deliveredBy.set(key, (nodes = new Set()))
      nodes.add(r.node)
      const at = `${key}\u0000${r.node}`
      if (!firstDelivery.has(at)) firstDelivery.set(at, r.time)
    }
    const out: Violation[] = []
    const reported = new Set<string>()
    // Each incarnation's agreed list as it changed (opened with every member, then views).
    const lists = new Map<string, readonly string[]>()
    for (const r of history.records) {
      const inc = `${r.node}\u0000${r.incarnation}\u0000${r.group}`
      if (r.kind === 'opened') {
        if (!lists.has(inc)) lists.set(inc, r.view ?? [])
        continue
      }
      if (r.kind === 'view' && r.layer === LAYER) {
        lists.set(inc, r.view ?? [])
        continue
      }
      if (r.kind !== 'stable' || r.layer !== LAYER) continue
      const key = `${r.group}\u0000${r.id}`
      if (reported.has(key)) continue
      const sender = senderOf(r.id!)
      const lacking: string[] = []
      for (const q of lists.get(inc) ?? []) {
        if (q === sender) continue
        const at = firstDelivery.get(`${key}\u0000${q}`)
        if (at === undefined || at > r.time) lacking.push(q)
      }
      if (lacking.length > 0) {
        reported.add(key)
        out.push({
          checker: this.name,
          node: r.node,
          time: r.time,
          message: `${r.node} called ${r.id} stable at ${r.time}, but ${lacking.join(',')} of its agreed list had not delivered it`,
        })
        continue
      }
      const nodes = deliveredBy.get(key) ?? new Set()
      const never = up.filter((n) => !nodes.has(n))
      if (never.length > 0) {
        reported.add(key)
        out.push({
          checker: this.name,
          node: r.node,
          time: r.time,
          message: `${r.node} called ${r.id} stable, but ${never.join(',')} never delivered it`,
        })
      }
    }
    return out
  },
}

export const waveAgreement: Checker = {
  name: 'psync-wave-agreement',
  check(history, context) {
    const first = new Map<string, HistoryRecord>()
    const last = new Map<string, number>() // node/incarnation/group → last wave seen
    const seenBy = new Map<string, Set<string>>() // group → "node wave"
    const groups = new Set<string>()
    const out: Violation[] = []
    for (const r of history.records) {
      if (r.kind !== 'wave' || r.layer !== LAYER) continue
      const group = r.group ?? ''
      groups.add(group)
      const inc = `${r.node}\u0000${r.incarnation}\u0000${group}`
      const previous = last.get(inc)
      if (previous !== undefined && r.depth !== previous + 1) {
        out.push({
          checker: this.name,
          node: r.node,
          time: r.time,
          message: `${r.node} (incarnation ${r.incarnation}) saw wave ${r.depth} of ${group} complete right after wave ${previous}`,
        })
      }
      last.set(inc, r.depth!)
      let seen = seenBy.get(group)
      if (seen === undefined) seenBy.set(group, (seen = new Set()))
      seen.add(`${r.node}\u0000${r.depth}`)
      const key = `${group}\u0000${r.depth}`
      const earlier = first.get(key)
      if (earlier === undefined) {
        first.set(key, r)
        continue
      }
      const a = (earlier.ids ?? []).join(' ')
      const b = (r.ids ?? []).join(' ')
      if (a !== b) {
        out.push({
          checker: this.name,
          node: r.node,
          time: r.time,
          message: `wave ${r.depth} of ${group}: ${earlier.node} saw [${a}], ${r.node} saw [${b}]`,
        })
      }
    }
    // Every wave any node completed, every node up at the end completed (in some incarnation)
    // — unless some member dropped it from its agreed list (masked, excluded): its view of
    // the conversation is then its own.
    const dropped = new Set<string>()
    for (const r of history.records) {
      if (r.kind !== 'view' || r.layer !== LAYER) continue
      for (const n of context.nodes) if (!(r.view ?? []).includes(n)) dropped.add(n)
    }
    const up = history.upAtEnd(context.nodes).filter((n) => !dropped.has(n))
    for (const [key, r] of first) {
      const group = r.group ?? ''
      const seen = seenBy.get(group)!
      const missing = up.filter(
        (n) => !seen.has(`${n}\u0000${r.depth}`) && opened(history, n, group),
      )
      if (missing.length > 0)
        out.push({
          checker: this.name,
          message: `wave ${r.depth} of ${key.split('\u0000')[0]} completed at ${r.node} but never at ${missing.join(',')}`,
        })
    }
    return out
  },
}

/** Whether `node` ever opened `group` (a node outside a group sees none of its waves). */
function opened(history: History, node: string, group: string): boolean {
  return history.records.some((r) => r.kind === 'opened' && r.node === node && r.group === group)
}

/** Every Psync checker. Add `noCreation` and `noDuplication` from `@consul/sim` beside them. */
export const psyncCheckers: readonly Checker[] = [
  causalOrder,
  atomicDelivery,
  stabilitySafety,
  waveAgreement,
]
