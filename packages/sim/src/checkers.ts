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

/** Every delivered message id was sent (recorded `trace.sent`) by its claimed sender. */
export const noCreation: Checker = {
  name: 'no-creation',
  check(history) {
    const sent = new Map<string, NodeId>()
    for (const r of history.sent()) sent.set(`${r.group}\u0000${r.id}`, r.node)
    const out: Violation[] = []
    for (const r of history.delivered()) {
      const sender = sent.get(`${r.group}\u0000${r.id}`)
      if (sender === undefined) {
        out.push({
          checker: 'no-creation',
          node: r.node,
          time: r.time,
          message: `${r.node} delivered ${r.id} in ${r.group}, which nobody sent`,
        })
      } else if (r.from !== undefined && r.from !== sender) {
        out.push({
          checker: 'no-creation',
          node: r.node,
          time: r.time,
          message: `${r.node} delivered ${r.id} as from ${r.from}, but ${sender} sent it`,
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
