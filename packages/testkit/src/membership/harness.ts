/**
 * The world the Membership conformance suite runs in: the whole strong stack — Psync, the
 * Divider, Failure Detection, the Membership under test and an Order — in `@consul/sim`, the
 * Order suite's probe recording every delivery, a membership probe recording every view
 * change and state change, and a workload of submits at both delivery levels. Each *aspect*
 * is a fault script (crashes, concurrent crashes, a false suspicion, partitions, a one-way
 * or flapping link, a stalled member, a random swarm); every run is checked for:
 *
 * - view agreement (the same view k everywhere, with the same cuts) and the primary
 *   partition (view k+1 a majority of view k) — the Membership package's checkers, given in
 *   the setup;
 * - everything the Order suite checks (no duplication or creation, total-order agreement
 *   across views, causal order, validity of every `'safe'` acknowledgement at every replica
 *   of the final view, liveness) — with the real cuts, not emulated ones;
 * - what the aspect promises (who is excluded, who is not, who ends in the minority).
 */
import {
  applyFaultPlan,
  type Checker,
  describePlan,
  dist,
  drawSwarm,
  Simulation,
} from '@consul/sim'
import {
  capability,
  type DeliveryLevel,
  type DividerControl,
  defineProtocol,
  type FailureDetectionControl,
  MEMBERSHIP,
  type MembershipControl,
  type NodeId,
  ORDER,
  type OrderControl,
  type PrimaryState,
  type ProtocolFactory,
  type PsyncControl,
  type Random,
  stack,
  type ViewChange,
} from '@consul/xkernel'
import { checkWorld } from '../order/checks.js'
import {
  defaultCommand,
  newWorld,
  type OrderSetup,
  orderProbe,
  type World,
} from '../order/harness.js'

type Base = { psync: PsyncControl; divider: DividerControl }

export interface MembershipSetup {
  readonly name: string
  psync(options: {
    logEveryMs: number
  }): ProtocolFactory<Record<never, never>, { psync: PsyncControl }>
  divider(): ProtocolFactory<{ psync: PsyncControl }, { divider: DividerControl }>
  failureDetection(options: {
    suspectAfterMs: number
  }): ProtocolFactory<Base, { 'failure-detection': FailureDetectionControl }>
  /** A fresh factory of the Membership under test. */
  membership(): ProtocolFactory<
    Base & { 'failure-detection': FailureDetectionControl },
    { membership: MembershipControl }
  >
  /** The Order to run above it (a v2 Order: requires `psync` and `divider`). */
  order(): ProtocolFactory<Base, { order: OrderControl }>
  /** Semantic orders: which commands conflict (see `OrderSetup.conflicts`). */
  conflicts?(a: Uint8Array, b: Uint8Array): boolean
  /**
   * The invariant checkers over the simulator's history: normally `viewAgreement` and
   * `primaryPartition({ m: nodes })` from `@consul/membership/checkers` (arguments, so the
   * testkit depends on the framework only).
   */
  checkers(groups: Readonly<Record<string, readonly NodeId[]>>): readonly Checker[]
}

export const MEMBERSHIP_ASPECTS = [
  'crash',
  'concurrent',
  'false-suspicion',
  'partition',
  'asymmetric-partition',
  'one-way',
  'flapping',
  'stall',
  'swarm',
  'leave',
] as const
export type MembershipAspect = (typeof MEMBERSHIP_ASPECTS)[number]

export const SUSPECT_AFTER_MS = 150
const DURATION_MS = 4_000
/** Events a run may take (a calm one takes 40–60 thousand): beyond it the run is a storm. */
const EVENT_BUDGET = 1_500_000
const WORK_END_MS = 2_800

export interface MembershipWorld {
  readonly order: World
  readonly changes: Map<string, ViewChange[]>
  readonly states: Map<string, PrimaryState[]>
  readonly controls: Map<NodeId, MembershipControl>
  /** Members the aspect crashed for good. */
  readonly crashed: Set<NodeId>
  environment: string
}

export interface MembershipRun {
  readonly aspect: MembershipAspect
  readonly seed: number
  readonly nodes: number
  readonly problems: readonly string[]
  readonly environment: string
  readonly world: MembershipWorld
  readonly sim: Simulation<Record<string, unknown>>
}

const PROBE = capability<'membership-probe', { ok: true }>('membership-probe')

function membershipProbe(current: () => MembershipWorld) {
  return defineProtocol({
    name: 'membership-probe',
    requires: [MEMBERSHIP],
    provides: [PROBE],
    create: () => ({
      open(ctx) {
        const world = current()
        const m = ctx.get(MEMBERSHIP)
        const key = `${ctx.self}/${world.order.sim?.incarnation(ctx.self) ?? 0}`
        world.controls.set(ctx.self, m)
        world.changes.set(key, [])
        world.states.set(key, [])
        m.onViewChange((change) => {
          world.changes.get(key)!.push(change)
          for (const [member, cut] of Object.entries(change.reason.cuts))
            world.order.excluded.set(member, cut)
        })
        m.onStateChange((state) => void world.states.get(key)!.push(state))
        return { controls: { 'membership-probe': { ok: true as const } } }
      },
    }),
  })
}

const nodesOf = (aspect: MembershipAspect, seed: number) =>
  aspect === 'swarm'
    ? seed % 2 === 0
      ? 5
      : 3
    : aspect === 'false-suspicion' || aspect === 'stall' || aspect === 'leave'
      ? 3 + 2 * (seed % 2)
      : 5

/** One run of `aspect` over `seed`, checked. */
export async function runMembershipScenario(
  setup: MembershipSetup,
  aspect: MembershipAspect,
  seed: number,
): Promise<MembershipRun> {
  const n = nodesOf(aspect, seed)
  const orderWorld = newWorld('calm', 'none')
  const world: MembershipWorld = {
    order: orderWorld,
    changes: new Map(),
    states: new Map(),
    controls: new Map(),
    crashed: new Set(),
    environment: 'no faults',
  }
  const sim = new Simulation({
    seed,
    nodes: n,
    network: { delay: dist.uniform(0.5, 3) },
    stack: stack()
      .use(setup.psync({ logEveryMs: 2 }))
      .use(setup.divider())
      .use(setup.failureDetection({ suspectAfterMs: SUSPECT_AFTER_MS }))
      .use(setup.membership())
      .use(setup.order())
      .use(orderProbe(() => orderWorld))
      .use(membershipProbe(() => world)),
  })
  orderWorld.sim = sim as never
  const problems: string[] = []
  try {
    await sim.start()
    await sim.openAll({ port: 'm' })
    workload(sim as never, orderWorld)
    const expect = script(aspect, sim, world)
    await sim.run({ until: DURATION_MS, maxEvents: EVENT_BUDGET })
    // A protocol storm (retransmissions or ballots feeding each other) would otherwise keep a
    // campaign worker busy for good: it is a liveness failure of the seed.
    if (sim.now < DURATION_MS)
      problems.push(
        `[liveness] event storm: ${EVENT_BUDGET} events by ${Math.round(sim.now)} ms of ${DURATION_MS} (a calm run takes well under 100,000)`,
      )
    problems.push(...expect())
  } catch (error) {
    problems.push(`[run] ${String(error)}`)
  }
  // Targets: up at the end, not excluded — every replica of the final view.
  const targets = sim.nodes.filter((node) => sim.isUp(node) && !orderWorld.excluded.has(node))
  const orderSetup = { name: setup.name, conflicts: setup.conflicts } as unknown as OrderSetup
  problems.push(
    ...checkWorld(orderSetup, orderWorld, sim.history, { targets, everySubmitted: false }),
  )
  for (const v of sim.check(setup.checkers({ m: sim.nodes })))
    problems.push(`[${v.checker}] ${v.message}`)
  if (targets.length === 0) problems.push('[liveness] no replica of a primary view is left')
  // Liveness after the faults heal: a command submitted late by a member of the final view
  // is ordered (its submit resolved; checkWorld saw it reach every other member).
  for (const s of orderWorld.submitted)
    if (
      s.incarnation === sim.incarnation(s.node) &&
      targets.includes(s.node) &&
      s.acknowledged === undefined &&
      lateSubmit(s)
    )
      problems.push(
        `[liveness] ${s.node}'s late ${s.level} submit never resolved (${s.rejected ?? 'pending'})`,
      )
  return {
    aspect,
    seed,
    nodes: n,
    problems,
    environment: world.environment,
    world,
    sim: sim as never,
  }
}

const late = new WeakSet<object>()
const lateSubmit = (s: object) => late.has(s)

type Caps = { order: OrderControl }

function workload(sim: Simulation<Caps>, world: World): void {
  let count = 0
  const submit = (node: NodeId) => {
    const group = sim.host(node).group('m')
    if (group === undefined) return
    const command = defaultCommand(sim.random, node, ++count)
    const level: DeliveryLevel = sim.random.next() < 0.5 ? 'safe' : 'agreed'
    const entry = {
      node,
      incarnation: sim.incarnation(node),
      command,
      level,
    } as World['submitted'][number]
    world.submitted.push(entry)
    if (sim.now >= LATE_MS) late.add(entry)
    group
      .get(ORDER)
      .submit(command, { level })
      .then(
        (ordered) => {
          entry.acknowledged = ordered.id
        },
        (error: unknown) => {
          entry.rejected = (error as { code?: string }).code ?? String(error)
        },
      )
  }
  sim.every(10, WORK_END_MS, () => {
    for (const node of sim.nodes) if (sim.isUp(node) && sim.random.next() < 0.3) submit(node)
  })
  // The last commands, after every fault healed: they must reach the whole final view.
  sim.at(LATE_MS, () => {
    for (const node of sim.nodes) if (sim.isUp(node)) submit(node)
  })
}

/** When the last commands are submitted (every fault has healed by then). */
const LATE_MS = DURATION_MS - 900

type Expect = () => string[]

function shuffle<T>(r: Random, items: readonly T[]): T[] {
  const out = [...items]
  for (let i = out.length - 1; i > 0; i--) {
    const j = r.int(i + 1)
    ;[out[i], out[j]] = [out[j]!, out[i]!]
  }
  return out
}
const pick = <T>(r: Random, items: readonly T[]): T => items[r.int(items.length)]!

/** Schedules the aspect's faults; returns what to check about them at the end. */
function script(
  aspect: MembershipAspect,
  sim: Simulation<Record<string, unknown>>,
  world: MembershipWorld,
): Expect {
  const r = sim.random.fork('aspect')
  const nodes = sim.nodes
  const finalView = (node: NodeId) => world.controls.get(node)?.view().members ?? []
  const primaries = () => nodes.filter((node) => sim.isUp(node) && !world.order.excluded.has(node))
  const viewIs = (expected: readonly NodeId[], why: string): string[] =>
    primaries()
      .filter((node) => finalView(node).join() !== [...expected].sort().join())
      .map(
        (node) =>
          `[aspect] ${why}: ${node}'s final view is [${finalView(node).join()}], expected [${[...expected].sort().join()}]`,
      )
  switch (aspect) {
    case 'crash': {
      // 1..f of n crash at random times, for good.
      const f = 1 + r.int(Math.floor((nodes.length - 1) / 2))
      const victims = shuffle(r, nodes).slice(0, f)
      const times = victims.map(() => 300 + r.int(1_500))
      victims.forEach((v, i) => {
        world.crashed.add(v)
        sim.at(times[i]!, () => sim.crash(v))
      })
      world.environment = `crash ${victims.map((v, i) => `${v}@${times[i]}`).join(' ')}`
      return () =>
        viewIs(
          nodes.filter((x) => !victims.includes(x)),
          'crashed members are excluded',
        )
    }
    case 'concurrent': {
      const f = Math.floor((nodes.length - 1) / 2)
      const victims = shuffle(r, nodes).slice(0, f)
      const at = 300 + r.int(1_000)
      for (const v of victims) world.crashed.add(v)
      sim.at(at, () => {
        for (const v of victims) sim.crash(v)
      })
      world.environment = `concurrent crash of ${victims.join(',')} at ${at}`
      return () =>
        viewIs(
          nodes.filter((x) => !victims.includes(x)),
          'concurrent failures are excluded',
        )
    }
    case 'false-suspicion': {
      // Paused for twice the timeout, then resumed: excluded or nacked, never a split brain.
      const victim = pick(r, nodes)
      const at = 300 + r.int(1_000)
      sim.at(at, () => sim.pause(victim, 2 * SUSPECT_AFTER_MS))
      world.environment = `pause ${victim} at ${at} for ${2 * SUSPECT_AFTER_MS} ms`
      return () => {
        const others = nodes.filter((x) => x !== victim)
        const out = [
          ...viewIs(
            world.order.excluded.has(victim) ? others : nodes,
            `only the paused member may leave`,
          ),
        ]
        for (const node of others)
          if (world.order.excluded.has(node))
            out.push(`[aspect] ${node} was excluded, only ${victim} was paused`)
        if (world.order.excluded.has(victim)) {
          const state = world.controls.get(victim)?.state()
          if (state !== 'excluded')
            out.push(`[aspect] ${victim} was excluded by the primary but reports ${String(state)}`)
        }
        return out
      }
    }
    case 'partition': {
      // A symmetric partition into a majority and a minority, healed later; sometimes one-way.
      const shuffled = shuffle(r, nodes)
      const minority = shuffled.slice(0, Math.floor((nodes.length - 1) / 2))
      const majority = shuffled.slice(minority.length)
      const at = 300 + r.int(800)
      const length = 600 + r.int(900)
      sim.at(at, () => sim.network.partition(majority, minority))
      let sawMinority = false
      sim.at(at + length - 10, () => {
        sawMinority = minority.every((m) => world.controls.get(m)?.state() !== 'primary')
      })
      sim.at(at + length, () => sim.network.heal())
      world.environment = `partition [${majority.join()}] | [${minority.join()}] at ${at} for ${length} ms`
      return () => {
        const out = viewIs(majority, 'the minority side is excluded')
        if (!sawMinority)
          out.push(
            `[aspect] the minority [${minority.join()}] still called itself primary at the end of the partition`,
          )
        for (const m of minority) {
          const state = world.controls.get(m)?.state()
          if (state !== 'excluded')
            out.push(`[aspect] ${m} (minority) ends ${String(state)}, not excluded`)
        }
        return out
      }
    }
    case 'asymmetric-partition': {
      // One side does not hear the other, which hears it: the side that hears nothing is
      // suspected for silence, the deaf one for never acknowledging — either way the
      // minority leaves and the majority goes on.
      const shuffled = shuffle(r, nodes)
      const minority = shuffled.slice(0, Math.floor((nodes.length - 1) / 2))
      const majority = shuffled.slice(minority.length)
      const deafMinority = r.next() < 0.5
      const at = 300 + r.int(800)
      const length = 700 + r.int(800)
      sim.at(at, () => {
        for (const a of majority)
          for (const b of minority) deafMinority ? sim.network.block(a, b) : sim.network.block(b, a)
      })
      sim.at(at + length, () => sim.network.heal())
      world.environment = `${deafMinority ? `[${minority.join()}] does not hear [${majority.join()}]` : `[${majority.join()}] does not hear [${minority.join()}]`} at ${at} for ${length} ms`
      return () => {
        const out = viewIs(majority, 'the minority side is excluded')
        for (const m of minority) {
          const state = world.controls.get(m)?.state()
          if (state !== 'excluded')
            out.push(`[aspect] ${m} (minority) ends ${String(state)}, not excluded`)
        }
        return out
      }
    }
    case 'one-way': {
      // One member cannot hear another (the other hears it): must settle, not churn.
      const [a, b] = shuffle(r, nodes)
      const at = 300 + r.int(500)
      sim.at(at, () => sim.network.block(b!, a!))
      sim.at(at + 1_500, () => sim.network.unblock(b!, a!))
      world.environment = `${a} does not hear ${b} from ${at} for 1500 ms`
      return () => churn(world, 1)
    }
    case 'flapping': {
      const [a, b] = shuffle(r, nodes)
      const at = 300 + r.int(500)
      for (let t = 0; t < 1_500; t += 100)
        sim.at(at + t, () =>
          t % 200 === 0 ? sim.network.partition([a!], [b!]) : sim.network.heal(),
        )
      sim.at(at + 1_500, () => sim.network.heal())
      world.environment = `link ${a}–${b} flaps every 100 ms from ${at} for 1500 ms`
      return () => churn(world, 1)
    }
    case 'stall': {
      // Its own loop stalls (a GC pause, an overloaded host): it must not get the healthy
      // members excluded — it may be excluded itself.
      const victim = pick(r, nodes)
      const at = 300 + r.int(1_000)
      const length = 200 + r.int(800)
      sim.at(at, () => sim.pause(victim, length))
      world.environment = `${victim} stalls at ${at} for ${length} ms`
      return () =>
        nodes
          .filter((x) => x !== victim && world.order.excluded.has(x))
          .map((x) => `[aspect] healthy ${x} was excluded while ${victim} stalled`)
    }
    case 'leave': {
      // Members leave gracefully (`leave()`) at random times — on 5 nodes one or two, or one
      // and a crash of another; each must go with its own word as the reason, and nobody else.
      const order = shuffle(r, nodes)
      const leavers = order.slice(0, nodes.length === 5 ? 1 + r.int(2) : 1)
      const crash =
        nodes.length === 5 && leavers.length === 1 && r.int(2) === 0 ? order[1] : undefined
      const outcomes = new Map<NodeId, string>()
      const times = leavers.map(() => 300 + r.int(1_200))
      leavers.forEach((v, i) => {
        sim.at(times[i]!, () => {
          outcomes.set(v, 'pending')
          world.controls
            .get(v)!
            .leave()
            .then(
              (change) =>
                outcomes.set(
                  v,
                  change.left.includes(v) && change.reason.leaves.includes(v)
                    ? 'left'
                    : `resolved with left [${change.left.join()}], leaves [${change.reason.leaves.join()}]`,
                ),
              (error: unknown) => outcomes.set(v, `rejected: ${String(error)}`),
            )
        })
      })
      const crashAt = 300 + r.int(1_200)
      if (crash !== undefined) {
        world.crashed.add(crash)
        sim.at(crashAt, () => sim.crash(crash))
      }
      world.environment = `leave ${leavers.map((v, i) => `${v}@${times[i]}`).join(' ')}${crash === undefined ? '' : `, crash ${crash}@${crashAt}`}`
      return () => [
        ...viewIs(
          nodes.filter((x) => !leavers.includes(x) && x !== crash),
          'leavers and the crashed member are gone',
        ),
        ...leavers
          .filter((v) => outcomes.get(v) !== 'left')
          .map((v) => `[aspect] ${v}'s leave(): ${outcomes.get(v) ?? 'never called'}`),
        // A leave is its own reason: no view names a leaver without it in \`leaves\`.
        ...[...world.changes.values()].flatMap((changes) =>
          changes.flatMap((c) =>
            c.left
              .filter((x) => leavers.includes(x) && !c.reason.leaves.includes(x))
              .map((x) => `[aspect] view ${c.view.id} removed ${x} without naming its leave`),
          ),
        ),
      ]
    }
    case 'swarm': {
      const plan = drawSwarm(r.fork('swarm'), nodes, {
        durationMs: 3_000,
        quietTailMs: 1_000,
        diskCorruption: false,
      })
      applyFaultPlan(sim, plan)
      world.environment = describePlan(plan)
      return () => []
    }
  }
}

/** At most `limit` view changes at any member: asymmetric links settle, they do not churn. */
function churn(world: MembershipWorld, limit: number): string[] {
  const out: string[] = []
  for (const [key, changes] of world.changes)
    if (changes.length > limit)
      out.push(`[aspect] ${key} installed ${changes.length} views (churn)`)
  return out
}
