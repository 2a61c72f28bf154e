/**
 * Swarm testing (after TigerBeetle's VOPR): the seed draws the whole fault environment —
 * link delay distribution, loss, duplication, reordering and corruption rates, clock drift,
 * clock jumps, how often a crash damages the disk, and a schedule of partitions, clogs,
 * pauses and crash/restart cycles — so a sweep over seeds explores very different worlds,
 * not one world with different dice.
 *
 * The schedule keeps a majority of nodes up (at most ⌊(n−1)/2⌋ crashed at once) and ends
 * with a quiet tail in which everything is healed and every node is up, so liveness can
 * be checked after the faults.
 *
 * Invariant: a seed keeps its world. Regression tests name seeds whose worlds found bugs, so
 * a fault class added later draws from its own fork of the swarm's random (`fork` does not
 * consume from the parent stream) and everything drawn before stays the same; with the new
 * class switched off the plan is exactly the old one. Add new classes the same way.
 */
import type { CapabilityMap, NodeId, Random } from '@consul/xkernel'
import { type Distribution, dist } from './distributions.js'
import { describeLink, type LinkConfig } from './network.js'
import type { Simulation } from './simulation.js'

export interface SwarmOptions {
  /** Length of the run (ms of virtual time). */
  readonly durationMs: number
  /** Length of the fault-free tail at the end (default a quarter of the run). */
  readonly quietTailMs?: number
  readonly crashes?: boolean
  readonly partitions?: boolean
  readonly pauses?: boolean
  readonly clogs?: boolean
  readonly drift?: boolean
  /** Highest loss rate drawn (default 0.3). */
  readonly maxLoss?: number
  /** Highest duplication rate drawn (default 0.1). */
  readonly maxDuplicate?: number
  /** Draw a link corruption rate (datagrams damaged in transit, dropped by the endpoint). */
  readonly corruptDatagrams?: boolean
  /** Highest corruption rate drawn (default 0.05). */
  readonly maxCorrupt?: number
  /** Draw 0–2 forward jumps of a node's clock (5–2000 ms) before the quiet tail. */
  readonly clockJumps?: boolean
  /** Draw how likely a crash leaves a damaged record on the disk (`diskCorruptOnCrash`). */
  readonly diskCorruption?: boolean
}

export type FaultAction =
  | { readonly at: number; readonly type: 'crash'; readonly node: NodeId }
  | { readonly at: number; readonly type: 'restart'; readonly node: NodeId }
  | { readonly at: number; readonly type: 'pause'; readonly node: NodeId; readonly ms: number }
  | {
      readonly at: number
      readonly type: 'partition'
      readonly sides: readonly (readonly NodeId[])[]
    }
  | { readonly at: number; readonly type: 'block'; readonly from: NodeId; readonly to: NodeId }
  | {
      readonly at: number
      readonly type: 'clog'
      readonly from: NodeId
      readonly to: NodeId
      readonly ms: number
    }
  | { readonly at: number; readonly type: 'heal' }
  /** `sim.jumpClock(node, ms)`: the node's clock leaps forward (NTP step, VM resume). */
  | { readonly at: number; readonly type: 'jump'; readonly node: NodeId; readonly ms: number }
  /** Heals everything and sets `link` (loss, duplication, reordering, corruption all 0). */
  | { readonly at: number; readonly type: 'calm'; readonly link: LinkConfig }

export interface FaultPlan {
  readonly link: LinkConfig
  readonly driftPpm: Readonly<Record<NodeId, number>>
  readonly actions: readonly FaultAction[]
  /**
   * Probability that a crash leaves a damaged record of the last unsynced batch, set with
   * `sim.setDiskFaults` for the whole run; absent: the simulation's own `disk` setting stays.
   */
  readonly diskCorruptOnCrash?: number
}

function pickDelay(random: Random): Distribution {
  switch (random.int(4)) {
    case 0:
      return dist.constant(1 + random.int(5))
    case 1:
      return dist.uniform(0.2, 2 + random.next() * 20)
    case 2:
      return dist.exponential(1 + random.next() * 10, 0.2)
    default:
      return dist.pareto(0.5 + random.next() * 2, 1.2 + random.next(), 500)
  }
}

function pickNode(random: Random, nodes: readonly NodeId[]): NodeId {
  return nodes[random.int(nodes.length)]!
}

/** Draws a fault environment for `nodes` from `random` (use `sim.random.fork('swarm')`). */
export function drawSwarm(
  random: Random,
  nodes: readonly NodeId[],
  options: SwarmOptions,
): FaultPlan {
  const duration = options.durationMs
  if (!(duration > 0)) throw new RangeError(`durationMs must be > 0, got ${duration}`)
  const quiet = options.quietTailMs ?? duration / 4
  const faultEnd = Math.max(0, duration - quiet)
  const maxLoss = options.maxLoss ?? 0.3
  const maxDup = options.maxDuplicate ?? 0.1
  // Skew rates toward zero: many seeds should be nearly clean, some brutal.
  const skewed = (r: Random, max: number) => (r.next() < 0.25 ? 0 : max * r.next() ** 2)
  const rate = (max: number) => skewed(random, max)
  const drawnLink: LinkConfig = {
    delay: pickDelay(random),
    loss: rate(maxLoss),
    duplicate: rate(maxDup),
    reorder: rate(0.3),
    reorderMs: 1 + random.int(30),
  }
  // Fault classes added after the first release: each from its own fork (see the header).
  const corrupt =
    options.corruptDatagrams === false
      ? undefined
      : skewed(random.fork('corruption'), options.maxCorrupt ?? 0.05)
  const link: LinkConfig = corrupt === undefined ? drawnLink : { ...drawnLink, corrupt }
  const driftPpm: Record<NodeId, number> = {}
  for (const node of nodes) {
    driftPpm[node] = options.drift === false ? 0 : Math.round((random.next() * 2 - 1) * 2000)
  }
  const actions: FaultAction[] = []
  const at = () => random.next() * faultEnd
  if (options.partitions !== false && nodes.length > 1) {
    const count = random.int(4)
    for (let i = 0; i < count; i++) {
      const start = at()
      const end = Math.min(faultEnd, start + 10 + random.next() * duration * 0.2)
      const kind = random.int(3)
      if (kind === 0) {
        const node = pickNode(random, nodes)
        actions.push({ at: start, type: 'partition', sides: [[node]] })
      } else if (kind === 1) {
        const shuffled = nodes.map((n) => ({ n, k: random.next() }))
        shuffled.sort((x, y) => x.k - y.k)
        const minority = shuffled.slice(0, Math.floor((nodes.length - 1) / 2)).map((x) => x.n)
        const majority = nodes.filter((n) => !minority.includes(n))
        actions.push({ at: start, type: 'partition', sides: [majority, minority] })
      } else {
        const from = pickNode(random, nodes)
        let to = pickNode(random, nodes)
        if (to === from) to = nodes[(nodes.indexOf(from) + 1) % nodes.length]!
        actions.push({ at: start, type: 'block', from, to })
      }
      actions.push({ at: end, type: 'heal' })
    }
  }
  if (options.clogs !== false && nodes.length > 1) {
    const count = random.int(3)
    for (let i = 0; i < count; i++) {
      const from = pickNode(random, nodes)
      let to = pickNode(random, nodes)
      if (to === from) to = nodes[(nodes.indexOf(from) + 1) % nodes.length]!
      actions.push({ at: at(), type: 'clog', from, to, ms: 5 + random.next() * 200 })
    }
  }
  if (options.pauses !== false) {
    const count = random.int(3)
    for (let i = 0; i < count; i++) {
      actions.push({
        at: at(),
        type: 'pause',
        node: pickNode(random, nodes),
        ms: 5 + random.next() * 500,
      })
    }
  }
  if (options.crashes !== false && nodes.length > 1) {
    // Non-overlapping crash windows per node, at most ⌊(n−1)/2⌋ nodes down at any time.
    const budget = Math.floor((nodes.length - 1) / 2)
    const windows: { node: NodeId; from: number; to: number }[] = []
    const count = budget === 0 ? 0 : random.int(4)
    for (let i = 0; i < count; i++) {
      const node = pickNode(random, nodes)
      const from = at()
      const to = Math.min(faultEnd, from + 20 + random.next() * duration * 0.2)
      const overlapping = windows.filter((w) => w.from < to && from < w.to)
      if (overlapping.some((w) => w.node === node) || overlapping.length >= budget) continue
      windows.push({ node, from, to })
      actions.push({ at: from, type: 'crash', node })
      actions.push({ at: to, type: 'restart', node })
    }
  }
  if (options.clockJumps !== false && faultEnd > 0) {
    const jumps = random.fork('jumps')
    const count = jumps.int(3)
    for (let i = 0; i < count; i++) {
      actions.push({
        at: jumps.next() * faultEnd,
        type: 'jump',
        node: pickNode(jumps, nodes),
        ms: 5 + jumps.next() * 1995,
      })
    }
  }
  actions.push({
    at: faultEnd,
    type: 'calm',
    link: {
      ...link,
      loss: 0,
      duplicate: 0,
      reorder: 0,
      ...(corrupt === undefined ? {} : { corrupt: 0 }),
    },
  })
  // Stable: actions drawn by older code keep their relative order whatever is added.
  actions.sort((x, y) => x.at - y.at)
  if (options.diskCorruption === false) return { link, driftPpm, actions }
  const disk = random.fork('disk-corruption')
  const diskCorruptOnCrash = disk.next() < 0.4 ? 0 : 0.2 + disk.next() * 0.8
  return { link, driftPpm, actions, diskCorruptOnCrash }
}

/** Schedules the plan's actions on `sim` (call before running). */
export function applyFaultPlan<Prov extends CapabilityMap>(
  sim: Simulation<Prov>,
  plan: FaultPlan,
): void {
  sim.network.configure(plan.link)
  if (plan.diskCorruptOnCrash !== undefined)
    sim.setDiskFaults({ corruptOnCrash: plan.diskCorruptOnCrash })
  for (const [node, ppm] of Object.entries(plan.driftPpm)) sim.drift(node, ppm)
  for (const action of plan.actions) {
    sim.at(action.at, async () => {
      switch (action.type) {
        case 'crash':
          sim.crash(action.node)
          return
        case 'restart':
          if (!sim.isUp(action.node)) await sim.restart(action.node)
          return
        case 'pause':
          if (sim.isUp(action.node)) sim.pause(action.node, action.ms)
          return
        case 'partition':
          sim.network.partition(...action.sides)
          return
        case 'block':
          sim.network.block(action.from, action.to)
          return
        case 'clog':
          sim.network.clog(action.from, action.to, action.ms)
          return
        case 'heal':
          sim.network.heal()
          return
        case 'jump':
          sim.jumpClock(action.node, action.ms)
          return
        case 'calm':
          sim.network.heal()
          // Corruption off too, also for a plan drawn without it (the quiet tail is clean).
          sim.network.configure({ corrupt: 0, ...action.link })
          return
      }
    })
  }
}

/** One line saying what the plan does, for the CLI's summary. */
export function describePlan(plan: FaultPlan): string {
  const count = (type: FaultAction['type']) => plan.actions.filter((a) => a.type === type).length
  const parts = [describeLink(plan.link)]
  const partitions = count('partition') + count('block')
  if (partitions > 0) parts.push(`partitions=${partitions}`)
  if (count('clog') > 0) parts.push(`clogs=${count('clog')}`)
  if (count('pause') > 0) parts.push(`pauses=${count('pause')}`)
  if (count('crash') > 0) parts.push(`crashes=${count('crash')}`)
  if (count('jump') > 0) parts.push(`jumps=${count('jump')}`)
  if ((plan.diskCorruptOnCrash ?? 0) > 0)
    parts.push(`diskCorrupt=${plan.diskCorruptOnCrash!.toFixed(2)}`)
  return parts.join(' ')
}
