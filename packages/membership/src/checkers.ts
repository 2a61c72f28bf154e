/**
 * Membership's invariants, over the simulator's history (the `membership.view` records):
 *
 * - `viewAgreement`: every replica that installs view *k* of a group installs the same one
 *   — the same members and the same cuts — and each incarnation installs views in order,
 *   none skipped (a restarted replica replays them from the start: its log).
 * - `primaryPartition`: view *k+1* keeps a strict majority of view *k* (view 0 is the group's
 *   member list), so two views of the same number cannot exist on two sides of a partition
 *   and no two disjoint views ever order.
 */
import type { Checker, History, Violation } from '@consul/sim'
import type { NodeId } from '@consul/xkernel'
import './trace.js'

interface Installed {
  readonly members: readonly NodeId[]
  readonly cuts: string
  readonly node: NodeId
  readonly time: number
}

/** Views by group and configuration (`group` for configuration 0, else `group#c`). */
function views(history: History): Map<string, Map<number, Installed[]>> {
  const out = new Map<string, Map<number, Installed[]>>()
  for (const r of history.declared('membership.view')) {
    const name = configurationName(r.group, r.data.configuration ?? 0)
    let group = out.get(name)
    if (group === undefined) out.set(name, (group = new Map()))
    let list = group.get(r.data.id)
    if (list === undefined) group.set(r.data.id, (list = []))
    const cuts = JSON.stringify(Object.entries(r.data.cuts).sort(([a], [b]) => (a < b ? -1 : 1)))
    list.push({ members: r.data.members, cuts, node: r.node, time: r.time })
  }
  return out
}

function configurationName(group: string, configuration: number): string {
  return configuration === 0 ? group : `${group}#${configuration}`
}

export const viewAgreement: Checker = {
  name: 'view-agreement',
  check(history) {
    const out: Violation[] = []
    for (const [group, byId] of views(history)) {
      for (const [id, list] of byId) {
        const first = list[0]!
        for (const other of list) {
          if (other.members.join() !== first.members.join() || other.cuts !== first.cuts)
            out.push({
              checker: 'view-agreement',
              node: other.node,
              time: other.time,
              message: `${group} view ${id}: ${other.node} installed [${other.members.join()}] cuts ${other.cuts}, ${first.node} installed [${first.members.join()}] cuts ${first.cuts}`,
            })
        }
      }
    }
    // Each incarnation installs 1, 2, 3 … in order (in a configuration after the first, from
    // its view 0 when it moved there itself, else from 1).
    const seq = new Map<string, number>()
    for (const r of history.declared('membership.view')) {
      const configuration = r.data.configuration ?? 0
      const key = `${r.group}\u0000${r.node}#${r.incarnation}\u0000${configuration}`
      const previous = seq.get(key) ?? (configuration > 0 && r.data.id === 0 ? -1 : 0)
      if (r.data.id !== previous + 1)
        out.push({
          checker: 'view-agreement',
          node: r.node,
          time: r.time,
          message: `${r.group}: ${r.node} (incarnation ${r.incarnation}) installed view ${r.data.id} after view ${previous}`,
        })
      seq.set(key, r.data.id)
    }
    return out
  },
}

export function primaryPartition(groups: Readonly<Record<string, readonly NodeId[]>>): Checker {
  return {
    name: 'primary-partition',
    check(history) {
      const out: Violation[] = []
      for (const [group, byId] of views(history)) {
        // A configuration after the first starts from its view 0 (the members a join made).
        const initial = groups[group] ?? byId.get(0)?.[0]?.members
        if (initial === undefined) continue
        const ids = [...byId.keys()].filter((id) => id > 0).sort((a, b) => a - b)
        let previous: readonly NodeId[] = [...initial].sort()
        let previousId = 0
        for (const id of ids) {
          const members = byId.get(id)![0]!.members
          if (id !== previousId + 1) {
            out.push({
              checker: 'primary-partition',
              message: `${group}: view ${id} installed but view ${previousId + 1} never was`,
            })
          }
          const kept = members.filter((m) => previous.includes(m)).length
          if (kept * 2 <= previous.length || members.some((m) => !previous.includes(m)))
            out.push({
              checker: 'primary-partition',
              message: `${group}: view ${id} [${members.join()}] is not a majority of view ${previousId} [${previous.join()}]`,
            })
          previous = members
          previousId = id
        }
      }
      return out
    },
  }
}
