/**
 * The checks of the Order conformance suite, one per invariant, over what the harness
 * recorded (`harness.ts`) and what the simulator's recorder saw Psync do. Each returns its
 * problems as text starting with `[its name]`; `checkWorld` runs them all.
 *
 * They trust the recorder, not the Order: sequences are the deliveries the probe saw, in the
 * order it saw them (the positions an Order reports are checked against them, not used for
 * alignment); the causal past of a message is Psync's, as the recorder traced it; what a
 * restored replica may skip is exactly what the checkpoint it was restored from covered.
 */
import type { History } from '@consul/sim'
import type { NodeId } from '@consul/xkernel'
import type { Coverage, Incarnation, OrderSetup, World } from './harness.js'

/** The names `checkWorld` reports problems under. */
export const CHECKS = [
  'no duplication',
  'no creation',
  'positions',
  'total-order agreement',
  'semantic agreement',
  'causal order',
  'validity',
  'liveness',
  'stable cuts',
  'wave gap',
  'durability',
] as const
export type CheckName = (typeof CHECKS)[number]

const key = (c: Uint8Array) => Buffer.from(c).toString('base64')
const senderOfCommand = (id: string) => id.slice(0, id.lastIndexOf(':'))
const senderOfMessage = (message: string) => message.slice(0, message.lastIndexOf(':'))
const messageSeq = (message: string) => Number(message.slice(message.lastIndexOf(':') + 1))

/** What each incarnation's history is, for the checks. */
interface View {
  readonly inc: Incarnation
  /** Its deliveries, cut where its history stops counting (an excluded member's void part). */
  readonly deliveries: readonly {
    readonly id: string
    readonly message: string
    readonly command: Uint8Array
    readonly delivered: number
  }[]
  /** What its restored checkpoint covered, in order. */
  readonly covered: readonly string[]
  readonly boundaries: readonly { readonly wave: number; readonly count: number }[]
}

function coveredIds(coverage: Coverage | undefined, views: Map<string, View>): string[] {
  if (coverage === undefined) return []
  const from = views.get(coverage.from.key)
  const base = coveredIds(coverage.from.base, views)
  const own = (from?.deliveries ?? coverage.from.deliveries)
    .slice(0, coverage.count)
    .map((d) => d.id)
  return base.concat(own)
}

function viewsOf(world: World): Map<string, View> {
  const views = new Map<string, View>()
  const cutOf = world.excluded
  for (const inc of world.incarnations.values()) {
    let deliveries = inc.deliveries.map((d) => ({
      id: d.id,
      message: d.message,
      command: d.command,
      delivered: d.position.delivered,
    }))
    let boundaries = inc.boundaries
    const cut = cutOf.get(inc.node)
    if (cut !== undefined) {
      // Delivery is not uniform: from the excluded member's first delivery of a command a
      // cut discarded — its own, or another excluded member's (the two sides of a minority)
      // — its history is its own (as a crashed member's would be).
      const first = inc.deliveries.findIndex((d) => {
        const senderCut = cutOf.get(d.sender)
        return senderCut !== undefined && messageSeq(d.message) > senderCut
      })
      if (first >= 0) {
        deliveries = deliveries.slice(0, first)
        boundaries = boundaries.filter((b) => b.count <= first)
      }
    }
    views.set(inc.key, { inc, deliveries, covered: [], boundaries })
  }
  // Coverage refers to the (cut) views of earlier incarnations.
  for (const [k, v] of views) views.set(k, { ...v, covered: coveredIds(v.inc.base, views) })
  return views
}

function sequence(v: View): string[] {
  return v.covered.concat(v.deliveries.map((d) => d.id))
}

/** The last incarnation of each node. */
function latest(world: World): Map<NodeId, Incarnation> {
  const out = new Map<NodeId, Incarnation>()
  for (const inc of world.incarnations.values()) {
    const seen = out.get(inc.node)
    if (seen === undefined || inc.incarnation > seen.incarnation) out.set(inc.node, inc)
  }
  return out
}

export interface CheckOptions {
  /** Nodes whose final state must hold every delivered and every acknowledged command. */
  readonly targets: readonly NodeId[]
  /** Every submitted command must arrive (no crash, no exclusion in the run). */
  readonly everySubmitted: boolean
}

/** Every check over the world; problems as text, at most 5 per check, each prefixed `[check]`. */
export function checkWorld(
  setup: OrderSetup,
  world: World,
  history: History | undefined,
  options: CheckOptions,
): string[] {
  const problems: string[] = []
  // At most a few problems per check, so one broken invariant does not hide the others.
  const perCheck = new Map<CheckName, number>()
  const report = (check: CheckName, message: string) => {
    const n = perCheck.get(check) ?? 0
    if (n >= MAX_PER_CHECK) return
    const line = `[${check}] ${message}`
    if (problems.includes(line)) return
    perCheck.set(check, n + 1)
    problems.push(line)
  }
  const views = viewsOf(world)
  const sequences = new Map([...views].map(([k, v]) => [k, sequence(v)]))

  // No duplication: no incarnation delivers an id twice, nor one its checkpoint covered.
  for (const [k, seq] of sequences) {
    const seen = new Set<string>()
    for (const id of seq) {
      if (seen.has(id)) report('no duplication', `${k} delivered ${id} twice`)
      seen.add(id)
    }
  }

  // No creation: one content per id, submitted by its sender.
  const content = new Map<string, string>()
  for (const v of views.values()) {
    for (const d of v.deliveries) {
      const c = key(d.command)
      const before = content.get(d.id)
      if (before !== undefined && before !== c)
        report('no creation', `${d.id} has different content at ${v.inc.key}`)
      content.set(d.id, c)
    }
  }
  const submittedBy = new Set(world.submitted.map((s) => `${s.node}\u0000${key(s.command)}`))
  for (const [id, c] of content) {
    const sender = senderOfCommand(id)
    if (!submittedBy.has(`${sender}\u0000${c}`))
      report('no creation', `${id} was delivered but ${sender} never submitted it`)
  }

  // Positions run on from the checkpoint, one by one, in delivery order.
  for (const v of views.values()) {
    v.deliveries.forEach((d, i) => {
      const expected = v.covered.length + i + 1
      if (d.delivered !== expected)
        report(
          'positions',
          `${v.inc.key}'s delivery ${i + 1} (${d.id}) reports position ${d.delivered}, expected ${expected}`,
        )
    })
  }

  // Agreement.
  if (setup.conflicts === undefined) {
    let reference: string[] = []
    let referenceKey = ''
    for (const [k, seq] of sequences)
      if (seq.length > reference.length) {
        reference = seq
        referenceKey = k
      }
    for (const [k, seq] of sequences) {
      const at = seq.findIndex((id, i) => reference[i] !== id)
      if (at >= 0)
        report(
          'total-order agreement',
          `position ${at + 1}: ${k} delivered ${seq[at]}, ${referenceKey} delivered ${reference[at]}`,
        )
    }
  } else {
    const conflicts = setup.conflicts
    const commands = new Map<string, Uint8Array>()
    for (const v of views.values()) for (const d of v.deliveries) commands.set(d.id, d.command)
    const ranks = [...sequences].map(([k, seq]) => ({
      k,
      rank: new Map(seq.map((id, i) => [id, i])),
    }))
    const ids = [...commands.keys()]
    for (let x = 0; x < ids.length; x++) {
      for (let y = x + 1; y < ids.length; y++) {
        const a = ids[x]!
        const b = ids[y]!
        if (!conflicts(commands.get(a)!, commands.get(b)!)) continue
        let verdict: boolean | undefined
        for (const { k, rank } of ranks) {
          const ra = rank.get(a)
          const rb = rank.get(b)
          if (ra === undefined || rb === undefined) continue
          if (verdict === undefined) verdict = ra < rb
          else if (verdict !== ra < rb)
            report(
              'semantic agreement',
              `${a} and ${b} conflict but ${k} delivered them in the other order`,
            )
        }
      }
    }
  }

  // Causal order, from the recorder's view of Psync's graph.
  if (history !== undefined) checkCausal(world, views, history, report)

  // Validity, liveness: what the final replicas hold.
  const finals = latest(world)
  const finalSets = new Map<NodeId, Set<string>>()
  for (const node of options.targets) {
    const inc = finals.get(node)
    finalSets.set(node, new Set(inc === undefined ? [] : sequences.get(inc.key)))
  }
  for (const s of world.submitted) {
    if (s.acknowledged === undefined) continue
    // 'agreed' is not uniform: an excluded member's own commands above its cut may be lost.
    const cut = world.excluded.get(s.node)
    if (
      s.level === 'agreed' &&
      cut !== undefined &&
      messageSeq(s.acknowledged.slice(0, s.acknowledged.lastIndexOf('/'))) > cut
    )
      continue
    for (const [node, set] of finalSets)
      if (!set.has(s.acknowledged))
        report(
          'validity',
          `${s.level}-acknowledged ${s.acknowledged} (from ${s.node}) never reached ${node}`,
        )
  }
  const everywhere = new Set<string>()
  for (const seq of sequences.values()) for (const id of seq) everywhere.add(id)
  for (const [node, set] of finalSets) {
    const missing = [...everywhere].filter((id) => !set.has(id))
    if (missing.length > 0)
      report(
        'liveness',
        `${finals.get(node)?.key ?? node} never delivered ${missing.length} command(s), e.g. ${missing[0]}`,
      )
  }
  if (options.everySubmitted) {
    const delivered = new Set([...content].map(([id, c]) => `${senderOfCommand(id)}\u0000${c}`))
    const lost = world.submitted.filter(
      (s) => s.rejected === undefined && !delivered.has(`${s.node}\u0000${key(s.command)}`),
    )
    if (lost.length > 0)
      report(
        'liveness',
        `${lost.length} submitted command(s) never delivered, e.g. from ${lost[0]!.node}`,
      )
  }

  // Semantic orders: at every wave boundary the delivered set is that of the waves below it,
  // the same at every replica (so replica states are equal at every stable cut).
  if (setup.conflicts !== undefined) {
    const atWave = new Map<number, { k: string; set: string }>()
    for (const v of views.values()) {
      const seq = sequences.get(v.inc.key)!
      for (const b of v.boundaries) {
        const set = seq
          .slice(0, v.covered.length + b.count)
          .sort()
          .join(' ')
        const first = atWave.get(b.wave)
        if (first === undefined) atWave.set(b.wave, { k: v.inc.key, set })
        else if (first.set !== set)
          report(
            'stable cuts',
            `at the boundary of wave ${b.wave}, ${v.inc.key} had delivered another set of commands than ${first.k}`,
          )
      }
    }
  }

  // An own command is delivered only once its message is durable (the Order specification).
  for (const entry of world.deliveredBeforeDurable) {
    const [inc, id] = entry.split(' ')
    report('durability', `${inc} delivered its own ${id} before Psync had its message durable`)
  }

  // The gap kind: the member restarted after pruning without a covering checkpoint stopped.
  if (world.kind === 'gap') {
    const sim = world.sim
    const gaps = sim?.isUp('n3') ? sumCounter(sim.host('n3').stats(), 'waveGaps') : 0
    if (!world.stopped.has('n3') || gaps < 1)
      report(
        'wave gap',
        `n3 restarted after pruning without a checkpoint, but its Order did not stop (submits rejected with WAVE_GAP: ${world.stopped.has('n3')}, waveGaps counted: ${gaps})`,
      )
  }
  return problems
}

/** Problems reported per check at most. */
const MAX_PER_CHECK = 5

function sumCounter(
  stats: Readonly<Record<string, Readonly<Record<string, number>>>>,
  name: string,
): number {
  let n = 0
  for (const values of Object.values(stats)) n += values[name] ?? 0
  return n
}

/**
 * A command is delivered only after every command of every message in its message's causal
 * past — the past as Psync traced it (`trace.delivered` records with deps), the commands as
 * any replica delivered them. Only what the incarnation's own checkpoint covered counts as
 * delivered without its delivering it.
 */
function checkCausal(
  world: World,
  views: Map<string, View>,
  history: History,
  report: (check: CheckName, message: string) => void,
): void {
  // The deps of each message as each incarnation saw it (its own psync deliveries), and as
  // the versions that escaped their sender did: an own message that died with a crash before
  // it went out may be sent again under its id, with other deps.
  const crashed = new Set(history.of('crash').map((r) => `${r.node}/${r.incarnation}`))
  const seenBy = new Map<string, Map<string, readonly string[]>>()
  const escaped = new Map<string, readonly string[]>()
  for (const r of history.records) {
    if (r.kind !== 'delivered' || r.layer !== 'psync' || r.id === undefined) continue
    const inc = `${r.node}/${r.incarnation}`
    let mine = seenBy.get(inc)
    if (mine === undefined) seenBy.set(inc, (mine = new Map()))
    mine.set(r.id, r.deps ?? [])
    const vanished = r.node === senderOfMessage(r.id) && crashed.has(inc)
    if (!vanished && !escaped.has(r.id)) escaped.set(r.id, r.deps ?? [])
  }
  const commandsIn = new Map<string, number>()
  for (const inc of world.incarnations.values())
    for (const d of inc.deliveries) {
      const index = Number(d.id.slice(d.message.length + 1))
      if (index + 1 > (commandsIn.get(d.message) ?? 0)) commandsIn.set(d.message, index + 1)
    }
  for (const v of views.values()) {
    const own = seenBy.get(v.inc.key)
    const depsOf = (m: string) => own?.get(m) ?? escaped.get(m) ?? []
    const deliveredIn = new Map<string, number>()
    const bump = (id: string) => {
      const message = id.slice(0, id.lastIndexOf('/'))
      deliveredIn.set(message, (deliveredIn.get(message) ?? 0) + 1)
    }
    for (const id of v.covered) bump(id)
    const done = new Set<string>()
    /** Every command of `m` and of its whole past has been delivered here. */
    const complete = (m: string): boolean => {
      const stack = [m]
      const visiting = new Set<string>()
      while (stack.length > 0) {
        const top = stack[stack.length - 1]!
        if (done.has(top)) {
          stack.pop()
          continue
        }
        if ((deliveredIn.get(top) ?? 0) < (commandsIn.get(top) ?? 0)) return false
        if (!visiting.has(top)) {
          visiting.add(top)
          for (const d of depsOf(top)) if (!done.has(d)) stack.push(d)
          continue
        }
        stack.pop()
        done.add(top)
      }
      return true
    }
    for (const d of v.deliveries) {
      const early = depsOf(d.message).find((dep) => !complete(dep))
      if (early !== undefined)
        report(
          'causal order',
          `${v.inc.key} delivered ${d.id} before every command of ${early} in its causal past`,
        )
      bump(d.id)
    }
  }
}
