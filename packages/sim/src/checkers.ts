/**
 * The plumbing for invariant checkers, and the two checkers that need no knowledge of any
 * protocol: *no creation* (everything delivered was sent by someone) and *no duplication*
 * (no incarnation of a node delivers the same message twice). Protocol packages ship their
 * own checkers (causal order, total-order agreement, …) against the same interface.
 */
import type { NodeId } from '@consul/xkernel'
import type { History } from './history.js'

export interface Violation {
  readonly checker: string
  readonly message: string
  readonly node?: NodeId
  readonly time?: number
}

/** What a checker may look at besides the history. */
export interface CheckContext {
  readonly nodes: readonly NodeId[]
  readonly now: number
}

export interface Checker {
  readonly name: string
  check(history: History, context: CheckContext): readonly Violation[]
}

/** Runs every checker; a checker that throws is itself reported as a violation. */
export function runCheckers(
  checkers: readonly Checker[],
  history: History,
  context: CheckContext,
): Violation[] {
  const out: Violation[] = []
  for (const checker of checkers) {
    try {
      out.push(...checker.check(history, context))
    } catch (error) {
      out.push({ checker: checker.name, message: `checker threw: ${String(error)}` })
    }
  }
  return out
}

/**
 * Every delivered message id was sent (recorded `trace.sent`) by its claimed sender — with
 * the same content, where the records carry a digest — and no id ever stands for two
 * contents that both escaped their sender. (An own message that was never on the wire may
 * be sent again under its id by the sender's next incarnation: the one that escapes is the
 * one delivered by another node, or by an incarnation of the sender that did not crash.)
 */
export const noCreation: Checker = {
  name: 'no-creation',
  check(history) {
    const sent = new Map<string, { node: NodeId; digests: Set<string> }>()
    for (const r of history.sent()) {
      const key = `${r.group}\u0000${r.id}`
      let entry = sent.get(key)
      if (entry === undefined) sent.set(key, (entry = { node: r.node, digests: new Set() }))
      if (r.digest !== undefined) entry.digests.add(r.digest)
    }
    const crashed = new Set(history.of('crash').map((r) => `${r.node}\u0000${r.incarnation}`))
    const escaped = new Map<string, { digest: string; node: NodeId }>()
    const out: Violation[] = []
    for (const r of history.delivered()) {
      const key = `${r.group}\u0000${r.id}`
      const entry = sent.get(key)
      if (entry === undefined) {
        out.push({
          checker: 'no-creation',
          node: r.node,
          time: r.time,
          message: `${r.node} delivered ${r.id} in ${r.group}, which nobody sent`,
        })
        continue
      }
      if (r.from !== undefined && r.from !== entry.node) {
        out.push({
          checker: 'no-creation',
          node: r.node,
          time: r.time,
          message: `${r.node} delivered ${r.id} as from ${r.from}, but ${entry.node} sent it`,
        })
        continue
      }
      if (r.digest === undefined || entry.digests.size === 0) continue
      if (!entry.digests.has(r.digest)) {
        out.push({
          checker: 'no-creation',
          node: r.node,
          time: r.time,
          message: `${r.node} delivered ${r.id} in ${r.group} with content ${r.digest} that its sender never sent under that id`,
        })
        continue
      }
      // The sender's own delivery in an incarnation that later crashed may be of a version
      // that never went out; anyone else's delivery is of one that did.
      const own = r.node === entry.node
      if (own && crashed.has(`${r.node}\u0000${r.incarnation}`)) continue
      const seen = escaped.get(key)
      if (seen === undefined) escaped.set(key, { digest: r.digest, node: r.node })
      else if (seen.digest !== r.digest) {
        out.push({
          checker: 'no-creation',
          node: r.node,
          time: r.time,
          message: `${r.id} in ${r.group} stands for two contents: ${seen.node} delivered ${seen.digest}, ${r.node} delivered ${r.digest} (a reused id)`,
        })
      }
    }
    return out
  },
}

/** No incarnation of a node delivers the same message id twice in a group (per layer). */
export const noDuplication: Checker = {
  name: 'no-duplication',
  check(history) {
    const seen = new Set<string>()
    const out: Violation[] = []
    for (const r of history.delivered()) {
      const key = `${r.node}\u0000${r.incarnation}\u0000${r.group}\u0000${r.layer ?? ''}\u0000${r.id}`
      if (seen.has(key)) {
        out.push({
          checker: 'no-duplication',
          node: r.node,
          time: r.time,
          message: `${r.node} delivered ${r.id} in ${r.group} twice`,
        })
      }
      seen.add(key)
    }
    return out
  },
}
