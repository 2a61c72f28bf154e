/**
 * Checkers for the Divider, over the simulator's history: they read Psync's `delivered` and
 * `wave` records and the Divider's own declared records (`trace.ts`), so the simulator needs
 * no knowledge of the Divider.
 *
 * - `dividerRouting`: every message Psync delivered at a host is routed exactly once, to
 *   exactly the subscribers (with `deliver`) of its channel at that moment, in subscription
 *   order; nothing is routed that Psync did not deliver.
 * - `dividerWaves`: every wave Psync completed reaches every wave subscriber once, with
 *   exactly the wave's messages on that subscriber's channels, in the wave's order.
 */
import type { Checker, History, HistoryRecord, Violation } from '@consul/sim'
import './trace.js'

interface Sub {
  readonly who: string
  readonly channels: ReadonlySet<string>
  readonly acknowledgements: boolean
  readonly deliver: boolean
  readonly wave: boolean
}

const keyOf = (r: HistoryRecord) => `${r.node}#${r.incarnation}@${r.group ?? ''}`

/** The records of one host incarnation and group, in time order. */
function byIncarnation(history: History): Map<string, HistoryRecord[]> {
  const out = new Map<string, HistoryRecord[]>()
  for (const r of history.records) {
    if (r.group === undefined) continue
    const k = keyOf(r)
    let list = out.get(k)
    if (list === undefined) out.set(k, (list = []))
    list.push(r)
  }
  return out
}

const receives = (s: Sub, channel: string) =>
  channel === '' ? s.acknowledgements : s.channels.has(channel)

interface Replay {
  subs: Sub[]
  onRecord?: (r: HistoryRecord, subs: readonly Sub[]) => void
}

/** Walks one incarnation's records, keeping the subscriptions current. */
function replay(records: readonly HistoryRecord[], r: Replay): void {
  for (const rec of records) {
    if (rec.kind === 'divider.subscribed') {
      const d = rec.data as {
        who: string
        channels: string[]
        acknowledgements: boolean
        deliver: boolean
        wave: boolean
      }
      r.subs = [...r.subs, { ...d, channels: new Set(d.channels) }]
    } else if (rec.kind === 'divider.unsubscribed') {
      const who = (rec.data as { who: string }).who
      const at = r.subs.findIndex((s) => s.who === who)
      if (at >= 0) r.subs = r.subs.filter((_, i) => i !== at)
    } else r.onRecord?.(rec, r.subs)
  }
}

export const dividerRouting: Checker = {
  name: 'divider-routing',
  check(history) {
    const out: Violation[] = []
    for (const [where, records] of byIncarnation(history)) {
      const delivered = new Map<string, number>()
      const routed = new Map<string, number>()
      replay(records, {
        subs: [],
        onRecord: (rec, subs) => {
          if (rec.kind === 'delivered' && rec.layer === 'psync' && rec.id !== undefined) {
            delivered.set(rec.id, (delivered.get(rec.id) ?? 0) + 1)
          } else if (rec.kind === 'divider.routed') {
            const d = rec.data as { id: string; channel: string; to: string[] }
            routed.set(d.id, (routed.get(d.id) ?? 0) + 1)
            if (!delivered.has(d.id)) {
              out.push({
                checker: this.name,
                node: rec.node,
                time: rec.time,
                message: `${where}: routed ${d.id}, which Psync never delivered here`,
              })
            }
            const expected = subs
              .filter((s) => s.deliver && receives(s, d.channel))
              .map((s) => s.who)
            if (expected.join(',') !== d.to.join(',')) {
              out.push({
                checker: this.name,
                node: rec.node,
                time: rec.time,
                message: `${where}: ${d.id} on channel '${d.channel}' went to [${d.to.join(', ')}], its subscribers are [${expected.join(', ')}]`,
              })
            }
          }
        },
      })
      // Only where the Divider runs: a host with no Divider records is not the Divider's.
      if (routed.size === 0 && !records.some((r) => r.kind === 'divider.subscribed')) continue
      for (const [id, n] of delivered) {
        const r = routed.get(id) ?? 0
        if (r !== n) {
          out.push({
            checker: this.name,
            message: `${where}: Psync delivered ${id} ${n} time(s), the Divider routed it ${r} time(s)`,
          })
        }
      }
    }
    return out
  },
}

export const dividerWaves: Checker = {
  name: 'divider-waves',
  check(history) {
    const out: Violation[] = []
    for (const [where, records] of byIncarnation(history)) {
      const channelOf = new Map<string, string>()
      const expected: { wave: number; want: Map<string, string[]> }[] = []
      const got = new Map<number, Map<string, string[]>>()
      replay(records, {
        subs: [],
        onRecord: (rec, subs) => {
          if (rec.kind === 'divider.routed') {
            const d = rec.data as { id: string; channel: string }
            channelOf.set(d.id, d.channel)
          } else if (rec.kind === 'wave' && rec.layer === 'psync' && rec.depth !== undefined) {
            const want = new Map<string, string[]>()
            for (const s of subs) {
              if (!s.wave) continue
              want.set(
                s.who,
                (rec.ids ?? []).filter((id) => {
                  const c = channelOf.get(id)
                  return c !== undefined && receives(s, c)
                }),
              )
            }
            if (want.size > 0) expected.push({ wave: rec.depth, want })
          } else if (rec.kind === 'divider.wave') {
            const d = rec.data as { wave: number; to: { who: string; ids: string[] }[] }
            if (got.has(d.wave)) {
              out.push({
                checker: this.name,
                node: rec.node,
                time: rec.time,
                message: `${where}: wave ${d.wave} handed out twice`,
              })
            }
            got.set(d.wave, new Map(d.to.map((t) => [t.who, t.ids])))
          }
        },
      })
      for (const { wave, want } of expected) {
        const g = got.get(wave)
        if (g === undefined) {
          out.push({ checker: this.name, message: `${where}: wave ${wave} never handed out` })
          continue
        }
        for (const [who, ids] of want) {
          const had = g.get(who)
          if (had === undefined || had.join(',') !== ids.join(',')) {
            out.push({
              checker: this.name,
              message: `${where}: wave ${wave} gave ${who} [${(had ?? []).join(', ')}], its messages on ${who}'s channels are [${ids.join(', ')}]`,
            })
          }
        }
      }
    }
    return out
  },
}

/** Both Divider checkers. */
export const dividerCheckers: readonly Checker[] = [dividerRouting, dividerWaves]
