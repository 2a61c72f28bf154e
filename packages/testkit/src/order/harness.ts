/**
 * The world the Order conformance suite runs an Order in: Psync and the Order under test in
 * `@consul/sim`, a probe protocol on top that records every delivery per node and
 * incarnation, takes checkpoints at wave boundaries (as the coordinated checkpoint will) and
 * declares the prune floor, and a workload of submits at both delivery levels. What it
 * records is what the checks (`checks.ts`) read; nothing is taken from the Order's word alone
 * that the recorder can see for itself.
 *
 * Each scenario kind is one test of the suite and one slice of the campaign:
 * - `calm`: loss, duplication, reordering, partitions, pauses, clogs, corrupted datagrams,
 *   clock jumps — no crashes; every submitted command must arrive.
 * - `crash`: all of that plus crashes and restarts with torn writes.
 * - `durability`: a node is crashed right after it delivered one of its own commands — before
 *   its log can have committed it, for an Order that delivers own commands early — what an
 *   Order that counts an own message before it is durable gets wrong. (Every kind also checks
 *   that no own command is delivered before Psync reports its message durable.)
 * - `membership`: n4 is cut off and excluded with an agreed cut, as Membership will do.
 * - `checkpoint`: n2 is restored from a checkpoint taken between waves.
 * - `gap`: a member restarted after pruning, without a checkpoint that covers what was
 *   pruned: its Order must stop, not deliver a different sequence.
 *
 * Pruning (`'checkpoints'`: the floor the probe declares; `'retain'`: `retainWaves: 4` as
 * well) is on in every kind but `gap`'s `none`.
 */
import {
  applyFaultPlan,
  describePlan,
  dist,
  drawSwarm,
  type Scenario,
  type Simulation,
} from '@consul/sim'
import {
  type Capability,
  capability,
  type DeliveryLevel,
  type DividerControl,
  defineProtocol,
  type NodeId,
  ORDER,
  type OrderControl,
  type OrderedCommand,
  type ProtocolFactory,
  PSYNC,
  type PsyncControl,
  type Random,
  type Stack,
  stack,
} from '@consul/xkernel'

export interface OrderSetup {
  readonly name: string
  /**
   * A fresh factory of the Order under test: provides `order`, requires `psync` (a v1 Order)
   * or `psync` and `divider` (v2: give `divider` below too).
   */
  order():
    | ProtocolFactory<{ psync: PsyncControl }, { order: OrderControl }>
    | ProtocolFactory<{ psync: PsyncControl; divider: DividerControl }, { order: OrderControl }>
  /**
   * A v2 Order's Divider: normally `divider` from `@consul/divider` (an argument, like
   * `psync`, so the testkit depends on the framework only). Omit for a v1 Order.
   */
  divider?(): ProtocolFactory<{ psync: PsyncControl }, { divider: DividerControl }>
  /**
   * A fresh Psync factory to run it on, given the options the suite wants — normally
   * `(o) => psync(o)` from `@consul/psync`. (The suite takes it as an argument so that the
   * testkit depends on the framework only.)
   */
  psync(options: {
    logEveryMs: number
    retainWaves?: number
  }): ProtocolFactory<Record<never, never>, { psync: PsyncControl }>
  /**
   * Semantic orders: whether two commands conflict (do not commute). Omit for a total order
   * (every pair conflicts).
   */
  conflicts?(a: Uint8Array, b: Uint8Array): boolean
  /** The commands the workload submits (default: unique text). */
  command?(random: Random, node: NodeId, n: number): Uint8Array
  /** Seeds of the main fault scenario (default 10; the others run a share of it). */
  readonly seeds?: number
}

/**
 * Psync, the Divider when the setup has one (a v2 Order), and the Order under test. A v2
 * Order without a `divider` in its setup fails here with a clear error, not in the stack.
 */
export function orderStack(
  setup: OrderSetup,
  psyncOptions: { logEveryMs: number; retainWaves?: number },
): Stack<{ psync: PsyncControl; order: OrderControl }> {
  const order = setup.order()
  if (order.requires.some((c) => c.name === 'divider') && setup.divider === undefined) {
    throw new TypeError(
      `${setup.name}: the Order requires the divider (specification v2); give the setup divider: () => divider() from @consul/divider`,
    )
  }
  const base = stack().use(setup.psync(psyncOptions))
  const below = setup.divider === undefined ? base : base.use(setup.divider())
  return (below as unknown as Stack<{ psync: PsyncControl }>).use(
    order as ProtocolFactory<{ psync: PsyncControl }, { order: OrderControl }>,
  )
}

export type ScenarioKind = 'calm' | 'crash' | 'durability' | 'membership' | 'checkpoint' | 'gap'

/**
 * How Psync prunes: `'checkpoints'` — the probe checkpoints at wave boundaries and declares
 * each checkpoint's wave as the prune floor; `'retain'` — the same, plus `retainWaves: 4`;
 * `'none'` — no pruning, no checkpoints (restarts replay the whole log).
 */
export type Pruning = 'none' | 'checkpoints' | 'retain'

/** One run of a node: what it delivered, from where it started. */
export interface Incarnation {
  readonly key: string
  readonly node: NodeId
  readonly incarnation: number
  readonly deliveries: OrderedCommand[]
  /** The checkpoint it was restored from: what it covers. */
  readonly base: Coverage | undefined
  /** `{ wave, count }` at each wave boundary: count deliveries made by then. */
  readonly boundaries: { readonly wave: number; readonly count: number }[]
  readonly psync: PsyncControl
  readonly order: OrderControl
}

/** What a checkpoint covers: the first `count` deliveries of `from` (and what `from` covered). */
export interface Coverage {
  readonly from: Incarnation
  readonly count: number
  /** The Order's position().wave when it was taken. */
  readonly wave: number
}

export interface Submission {
  readonly node: NodeId
  readonly incarnation: number
  readonly command: Uint8Array
  readonly level: DeliveryLevel
  /** The command id the submit resolved with. */
  acknowledged?: string
  /** The code of the error it rejected with. */
  rejected?: string
}

export interface World {
  readonly kind: ScenarioKind
  readonly pruning: Pruning
  readonly incarnations: Map<string, Incarnation>
  readonly submitted: Submission[]
  /**
   * The latest checkpoint of each node (durable: it survives the node's crashes), with the
   * emulated Membership's state at that point (the exclusion cut it had applied, if any).
   */
  readonly checkpoints: Map<
    NodeId,
    Coverage & { readonly bytes: Uint8Array; readonly excludedCut?: number }
  >
  /** Agreed exclusions of the run: node → cut. */
  readonly excluded: Map<NodeId, number>
  /** Nodes each member excluded n4 at (membership), for the checks. */
  readonly exclusionPoints: Map<NodeId, number>
  /** Nodes whose restarted Order stopped at a wave gap (the `gap` kind expects one). */
  readonly stopped: Set<NodeId>
  /** Own commands delivered before Psync had their message durable: `<incarnation> <id>`. */
  readonly deliveredBeforeDurable: string[]
  sim: Simulation<OrderCaps> | undefined
  /** Where the fault environment came from, for failure messages. */
  environment: string
}

interface Probe {
  readonly ok: true
}

/** The capabilities of the stack the suite runs: Psync, the Order under test, the probe. */
export type OrderCaps = { psync: PsyncControl; order: OrderControl; 'order-probe': Probe }
const PROBE: Capability<'order-probe', Probe> = capability<'order-probe', Probe>('order-probe')

/** Checkpoint at most every this many waves. */
const CHECKPOINT_EVERY_WAVES = 2

/**
 * Records deliveries per node and incarnation; restores the node's latest checkpoint at open;
 * takes checkpoints at wave boundaries and declares the prune floor.
 */
export function orderProbe(current: () => World) {
  return defineProtocol({
    name: 'order-probe',
    requires: [ORDER, PSYNC],
    provides: [PROBE],
    create: () => ({
      open(ctx) {
        const world = current()
        const order = ctx.get(ORDER)
        const conversation = ctx.get(PSYNC)
        const inc = world.sim?.incarnation(ctx.self) ?? 0
        const checkpoint =
          world.pruning === 'none' && world.kind !== 'checkpoint'
            ? undefined
            : world.checkpoints.get(ctx.self)
        const record: Incarnation = {
          key: `${ctx.self}/${inc}`,
          node: ctx.self,
          incarnation: inc,
          deliveries: [],
          base:
            checkpoint === undefined
              ? undefined
              : { from: checkpoint.from, count: checkpoint.count, wave: checkpoint.wave },
          boundaries: [],
          psync: conversation,
          order,
        }
        world.incarnations.set(record.key, record)
        if (checkpoint !== undefined) order.restore(checkpoint.bytes)
        order.onDeliver((ordered) => {
          record.deliveries.push(ordered)
          // An own command delivered before its message is durable: a crash now takes it away
          // (and a checkpoint now would keep what the group never sees).
          if (
            ordered.sender === ctx.self &&
            !ordered.restored &&
            !conversation.durable(ordered.message)
          )
            world.deliveredBeforeDurable.push(`${record.key} ${ordered.id}`)
        })
        // What Membership does: decide n4's exclusion on delivering the deciding message, with
        // the cut "n4's messages in its causal past" — the same everywhere — and, after a
        // restart, apply the decision again: from its checkpoint (the deciding message may be
        // pruned from the log) before Psync starts, or when the replay delivers that message.
        let appliedCut = checkpoint?.excludedCut
        if (world.kind === 'membership' && ctx.self !== 'n4') {
          if (appliedCut !== undefined) conversation.exclude('n4', appliedCut)
          conversation.onDeliver((m) => {
            if (m.payload.length !== 2 || m.payload[0] !== MARKER[0]) return
            if (appliedCut !== undefined) return
            let cut = 0
            for (let seq = 1; conversation.precedes(`n4:${seq}`, m.id); seq++) cut = seq
            conversation.exclude('n4', cut)
            appliedCut = cut
            world.excluded.set('n4', cut)
            if (!world.exclusionPoints.has(ctx.self))
              world.exclusionPoints.set(ctx.self, record.deliveries.length)
          })
        }
        let lastCheckpoint = checkpoint?.wave ?? -CHECKPOINT_EVERY_WAVES
        // After the Order's own handler (it registered at its open, before ours).
        conversation.onWave(() => {
          if (!order.atWaveBoundary()) return
          const wave = order.position().wave
          record.boundaries.push({ wave, count: record.deliveries.length })
          if (world.pruning === 'none' || wave - lastCheckpoint < CHECKPOINT_EVERY_WAVES) return
          lastCheckpoint = wave
          world.checkpoints.set(ctx.self, {
            bytes: order.checkpoint(),
            from: record,
            count: record.deliveries.length,
            wave,
            ...(appliedCut === undefined ? {} : { excludedCut: appliedCut }),
          })
          // The coordinated checkpoint is durable: Psync may prune below it.
          conversation.setPruneFloor(wave)
        })
        return { controls: { 'order-probe': { ok: true as const } } }
      },
    }),
  })
}

const text = new TextEncoder()
export const defaultCommand = (_random: Random, node: NodeId, n: number) =>
  text.encode(`${node}#${n}`)

export function newWorld(kind: ScenarioKind, pruning: Pruning): World {
  return {
    kind,
    pruning,
    incarnations: new Map(),
    submitted: [],
    checkpoints: new Map(),
    excluded: new Map(),
    exclusionPoints: new Map(),
    stopped: new Set(),
    deliveredBeforeDurable: [],
    sim: undefined,
    environment: 'no faults',
  }
}

/** The psync options for a pruning mode. */
function psyncOptions(pruning: Pruning): { logEveryMs: number; retainWaves?: number } {
  return pruning === 'retain' ? { logEveryMs: 2, retainWaves: 4 } : { logEveryMs: 2 }
}

const MARKER = new Uint8Array([0x4d, 0x01]) // channel 'M': a monitoring message, not an order one

/** Nodes and length of each kind. */
const SHAPE: Record<ScenarioKind, { nodes: (seed: number) => number; durationMs: number }> = {
  calm: { nodes: (seed) => (seed % 4 === 0 ? 5 : 3), durationMs: 3_000 },
  crash: { nodes: (seed) => (seed % 5 === 0 ? 5 : 3), durationMs: 4_000 },
  durability: { nodes: () => 3, durationMs: 3_000 },
  membership: { nodes: () => 4, durationMs: 3_000 },
  checkpoint: { nodes: () => 3, durationMs: 3_000 },
  gap: { nodes: () => 3, durationMs: 3_000 },
}

/**
 * The scenario of `kind` for `setup`; `world()` is the world of its latest run (a fresh one
 * per run, so the CLI can run the same scenario over many seeds).
 */
export function orderScenario(
  setup: OrderSetup,
  kind: ScenarioKind,
  requested: Pruning,
): { scenario: Scenario<OrderCaps>; world: () => World } {
  // The gap kind prunes with retainWaves alone: no checkpoint covers what is pruned.
  const pruning: Pruning = kind === 'gap' ? 'none' : requested
  let world = newWorld(kind, pruning)
  const command = setup.command ?? defaultCommand
  const durationMs = SHAPE[kind].durationMs
  const workEnd = durationMs * 0.6
  const scenario: Scenario<OrderCaps> = {
    name: `order-conformance-${setup.name}-${kind}-${pruning}`,
    durationMs,
    network: { delay: dist.uniform(0.5, 3) },
    stack: () =>
      orderStack(
        setup,
        kind === 'gap' ? { logEveryMs: 2, retainWaves: 4 } : psyncOptions(pruning),
      ).use(orderProbe(() => world)),
    async setup(s) {
      world = newWorld(kind, pruning)
      world.sim = s
      await s.openAll({ port: 'order' })
    },
    faults: (s) => faultsFor(kind, s, world, durationMs),
    workload(s) {
      let n = 0
      const submit = (node: NodeId) => {
        const group = s.host(node).group('order')
        if (group === undefined) return
        const c = command(s.random, node, ++n)
        const level: DeliveryLevel = s.random.next() < 0.5 ? 'safe' : 'agreed'
        const entry: Submission = {
          node,
          incarnation: s.incarnation(node),
          command: c,
          level,
        }
        world.submitted.push(entry)
        group
          .get(ORDER)
          .submit(c, { level })
          .then(
            (ordered) => {
              entry.acknowledged = ordered.id
            },
            (error: unknown) => {
              entry.rejected = (error as { code?: string }).code ?? String(error)
              if (entry.rejected === 'WAVE_GAP') world.stopped.add(node)
            },
          )
      }
      s.every(4, workEnd, () => {
        for (const node of s.nodes) if (s.isUp(node) && s.random.next() < 0.5) submit(node)
      })
      if (kind === 'durability') scheduleDurabilityCrashes(s, world)
      if (kind === 'membership') scheduleExclusion(s, world)
      if (kind === 'checkpoint') scheduleCheckpointRestore(s, world)
      if (kind === 'gap') scheduleGap(s, world, submit)
    },
  }
  return { scenario, world: () => world }
}

/** How many nodes a run of `kind` with `seed` has. */
export function nodesFor(kind: ScenarioKind, seed: number): number {
  return SHAPE[kind].nodes(seed)
}

function faultsFor(
  kind: ScenarioKind,
  s: Simulation<OrderCaps>,
  world: World,
  durationMs: number,
): void {
  if (kind === 'calm' || kind === 'crash') {
    const plan = drawSwarm(s.random.fork('swarm'), s.nodes, {
      durationMs,
      ...(kind === 'calm' ? { crashes: false } : {}),
    })
    applyFaultPlan(s, plan)
    world.environment = describePlan(plan)
    return
  }
  if (kind === 'durability') {
    const plan = drawSwarm(s.random.fork('swarm'), s.nodes, {
      durationMs,
      crashes: false,
      partitions: false,
      clogs: false,
    })
    applyFaultPlan(s, plan)
    world.environment = `${describePlan(plan)} + crashes right after own deliveries`
    return
  }
  world.environment = `scripted (${kind})`
}

/**
 * Crashes a node right after it delivered one of its own commands (at the same virtual
 * instant, after its submit settled — before its log commit can have completed), a few
 * times per run, and restarts it 50–150 ms later.
 */
function scheduleDurabilityCrashes(s: Simulation<OrderCaps>, world: World): void {
  let budget = 4
  const watched = new Set<string>()
  const watch = () => {
    for (const inc of world.incarnations.values()) {
      if (watched.has(inc.key) || !s.isUp(inc.node)) continue
      watched.add(inc.key)
      inc.order.onDeliver((c) => {
        if (budget <= 0 || c.sender !== inc.node || c.restored) return
        if (s.random.next() > 0.05) return
        const upNow = s.nodes.filter((n) => s.isUp(n)).length
        if (upNow < s.nodes.length) return
        budget--
        // An async event: it lets the submit's settlement run first, then crashes.
        s.after(0, async () => {
          await Promise.resolve()
          if (!s.isUp(inc.node) || s.incarnation(inc.node) !== inc.incarnation) return
          s.crash(inc.node)
          s.after(50 + s.random.next() * 100, async () => {
            await s.restart(inc.node)
            watch()
          })
        })
      })
    }
  }
  s.at(0, watch)
}

/**
 * Emulates what Membership does (the probe applies the decision, see `probe`): from 500 ms
 * n4's messages reach nobody while it still hears everyone — so it may complete waves that
 * hold its own last messages and deliver them (`'agreed'` is not uniform) — then at 800 ms
 * n1 sends the message that decides n4's exclusion. n2 crashes at 1200 ms and restarts at
 * 1300: its replay must apply the exclusion at the same point again.
 */
function scheduleExclusion(s: Simulation<OrderCaps>, _world: World): void {
  s.at(500, () => {
    for (const other of s.nodes) if (other !== 'n4') s.network.block('n4', other)
  })
  s.at(800, () => void s.host('n1').group('order')!.get(PSYNC).send(MARKER))
  s.at(1_200, () => s.crash('n2'))
  s.at(1_300, async () => {
    await s.restart('n2')
  })
}

/** n2 is checkpointed at the first wave boundary from 700 ms on, crashed at 900, restored at 1000. */
function scheduleCheckpointRestore(s: Simulation<OrderCaps>, world: World): void {
  const take = () => {
    const inc = [...world.incarnations.values()].find(
      (i) => i.node === 'n2' && i.incarnation === 0,
    )!
    if (inc.order.atWaveBoundary()) {
      const wave = inc.order.position().wave
      world.checkpoints.set('n2', {
        bytes: inc.order.checkpoint(),
        from: inc,
        count: inc.deliveries.length,
        wave,
      })
      // Psync everywhere may prune below it (the reproduction).
      for (const other of world.incarnations.values())
        if (s.isUp(other.node)) other.psync.setPruneFloor(wave)
    } else if (s.now < 880) s.after(0.5, take)
  }
  s.at(700, take)
  s.at(900, () => s.crash('n2'))
  s.at(1_000, async () => {
    await s.restart('n2')
  })
}

/**
 * n3 crashes at 1200 ms — after Psync (retainWaves 4, no checkpoints) pruned its log — and
 * restarts at 1300 with no checkpoint: its Order cannot replay the pruned waves and must stop.
 * It keeps submitting; the others go on.
 */
function scheduleGap(
  s: Simulation<OrderCaps>,
  _world: World,
  submit: (node: NodeId) => void,
): void {
  s.at(1_200, () => s.crash('n3'))
  s.at(1_300, async () => {
    await s.restart('n3')
  })
  s.at(1_400, () => submit('n3'))
}
