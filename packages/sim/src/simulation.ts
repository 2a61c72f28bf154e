/**
 * The simulation: several hosts of real protocol code in one process, on virtual time. One
 * seeded `Random` drives everything (link behaviour, disk latency, clock drift, each host's
 * own stream), and events at the same instant run in scheduling order, so the same seed
 * gives the same run — checked by the trace hash.
 *
 * Protocol code sees only the framework services the simulator gives it: a `Clock` on
 * virtual time (with per-host drift and pauses), a `Transport` over the simulated network,
 * and a `MemoryStorage` disk whose syncs take virtual time and whose unsynced writes a crash
 * loses. Promise continuations that a disk sync completion starts run at the same virtual
 * instant (up to 8 microtask hops deep); an async simulator event (`sim.at(t, async …)`)
 * runs until it settles or waits on the simulation, and then resumes when what it awaits
 * happens in virtual time.
 */
import {
  type CapabilityMap,
  type Clock,
  createLogger,
  type GroupSpec,
  type Host,
  type LogRecord,
  type LogThreshold,
  MemoryStorage,
  type NodeId,
  type Random,
  type Stack,
  seededRandom,
  type Timer,
  type TraceMessage,
  type Transport,
} from '@consul/xkernel'
import { type Checker, runCheckers, type Violation } from './checkers.js'
import { type Distribution, dist, sample } from './distributions.js'
import { EventQueue } from './event-queue.js'
import { History, type HistoryRecord, type RecordKind } from './history.js'
import { type LinkConfig, type NetworkHost, SimNetwork } from './network.js'
import { TraceHash } from './trace-hash.js'

/** Disk faults that can change during a run (`sim.setDiskFaults`). */
export interface DiskFaults {
  /** Probability that a crash leaves a torn or bit-flipped record of the last unsynced batch. */
  readonly corruptOnCrash?: number
}

export interface DiskOptions extends DiskFaults {
  /** How long a `sync()` takes. Default U(0.1, 1) ms. */
  readonly syncDelay?: Distribution
}

export interface SimulationOptions<Prov extends CapabilityMap> {
  readonly seed: number
  /** A node count (ids `n1`, `n2`, …) or the ids themselves. */
  readonly nodes: number | readonly NodeId[]
  readonly stack: Stack<Prov>
  /** Defaults for every link. */
  readonly network?: Partial<LinkConfig>
  readonly disk?: DiskOptions
  /** Per-group options for `host.open` / `recoverGroups` on restart. */
  readonly groupOptions?: (
    port: string,
    node: NodeId,
  ) => Readonly<Record<string, unknown>> | undefined
  /**
   * What a restarted host does first. Default: `host.recoverGroups(groupOptions)`, then
   * open afresh any group the node had opened through `openAll` that storage did not
   * remember (its record never reached the disk), as an application re-opening its
   * configured groups would.
   */
  readonly onRestart?: (
    host: Host<Prov>,
    node: NodeId,
    sim: Simulation<Prov>,
  ) => void | Promise<void>
  /**
   * Record `trace.*` events into `sim.history` (default true). Long benchmark runs turn it
   * off: the history grows with every message.
   */
  readonly record?: boolean
  /** Log threshold for hosts' loggers (default `warn`); records are kept in `sim.logs`. */
  readonly logLevel?: LogThreshold
  /** At most this many log records are kept (oldest dropped first). Default 10,000. */
  readonly maxLogRecords?: number
}

export interface RunOptions {
  /** Stop before the first event later than this virtual time. */
  readonly until?: number
  /** Stop before the first event later than now + this. */
  readonly for?: number
  /** Stop after this many events. */
  readonly maxEvents?: number
  /** Checked after every event; stop when it returns true. */
  readonly stopWhen?: () => boolean
}

export interface SimulationStats {
  readonly events: number
  readonly virtualMs: number
  readonly pendingEvents: number
  readonly network: SimNetwork['counters']
}

interface NodeState<Prov extends CapabilityMap> {
  readonly id: NodeId
  readonly index: number
  up: boolean
  incarnation: number
  pausedUntil: number
  driftPpm: number
  clockOffset: number
  host: Host<Prov> | undefined
  readonly disk: MemoryStorage
  readonly transport: Transport
}

/** Microtask hops drained after a disk completion, so `await sync()` resumes in the same instant. */
const SETTLE_HOPS = 8
/** Microtask hops an async simulator event gets to finish before the loop moves on. */
const MAX_SETTLE_HOPS = 256

type Writable<T> = { -readonly [K in keyof T]: T[K] }

export function nodeIds(nodes: number | readonly NodeId[]): NodeId[] {
  if (typeof nodes === 'number') {
    if (!Number.isInteger(nodes) || nodes < 1 || nodes > 1000) {
      throw new RangeError(`nodes must be an integer in 1..1000, got ${nodes}`)
    }
    return Array.from({ length: nodes }, (_, i) => `n${i + 1}`)
  }
  const ids = [...nodes]
  if (
    ids.length === 0 ||
    new Set(ids).size !== ids.length ||
    ids.some((id) => typeof id !== 'string' || id === '')
  ) {
    throw new RangeError('nodes must be distinct non-empty ids')
  }
  return ids
}

function checkCorruptOnCrash(value: number, prefix: string): number {
  if (!(value >= 0 && value <= 1))
    throw new RangeError(`${prefix}corruptOnCrash must be in [0, 1], got ${value}`)
  return value
}

export class Simulation<Prov extends CapabilityMap = CapabilityMap> {
  readonly seed: number
  readonly nodes: readonly NodeId[]
  readonly random: Random
  readonly network: SimNetwork
  readonly history = new History()
  readonly hash = new TraceHash()
  readonly logs: LogRecord[] = []
  /** Errors thrown by async simulator events (sync ones propagate out of `run`). */
  readonly errors: unknown[] = []
  private readonly queue = new EventQueue()
  private readonly state: NodeState<Prov>[] = []
  private readonly byId = new Map<NodeId, NodeState<Prov>>()
  private readonly stackDef: Stack<Prov>
  private readonly options: SimulationOptions<Prov>
  private readonly diskRandom: Random
  private readonly syncDelay: Distribution
  /** Invariant: a probability in [0, 1]. */
  private corruptOnCrash: number
  private currentTime = 0
  private eventCount = 0
  private settlePending = false
  /** Groups each node opened through `openAll`, re-opened on restart if not recovered. */
  private readonly configured = new Map<NodeId, Map<string, GroupSpec>>()
  private started = false

  constructor(options: SimulationOptions<Prov>) {
    if (!Number.isInteger(options.seed))
      throw new RangeError(`seed must be an integer, got ${options.seed}`)
    this.options = options
    this.seed = options.seed
    this.nodes = nodeIds(options.nodes)
    this.stackDef = options.stack
    this.random = seededRandom(options.seed)
    this.diskRandom = this.random.fork('disk')
    this.syncDelay = options.disk?.syncDelay ?? dist.uniform(0.1, 1)
    this.corruptOnCrash = checkCorruptOnCrash(options.disk?.corruptOnCrash ?? 0, 'disk.')
    const sim = this
    const networkHost: NetworkHost = {
      get now() {
        return sim.currentTime
      },
      scheduleForNode: (time, node, run) => {
        this.queue.push(time, node, -1, run)
      },
      isUp: (node) => this.state[node]!.up,
      hash: this.hash,
    }
    this.network = new SimNetwork(
      networkHost,
      this.nodes,
      this.random.fork('network'),
      options.network,
    )
    this.nodes.forEach((id, index) => {
      const disk = new MemoryStorage({
        name: `simulated disk of ${id}`,
        scheduleSync: (complete) => {
          this.queue.push(
            this.currentTime + sample(this.syncDelay, this.diskRandom),
            -1,
            -1,
            () => {
              complete()
              this.settlePending = true
            },
          )
        },
      })
      const node: NodeState<Prov> = {
        id,
        index,
        up: false,
        incarnation: -1,
        pausedUntil: 0,
        driftPpm: 0,
        clockOffset: 0,
        host: undefined,
        disk,
        transport: this.network.endpoint(id),
      }
      this.state.push(node)
      this.byId.set(id, node)
      this.configured.set(id, new Map())
    })
  }

  /** Virtual time in milliseconds since the start. */
  get now(): number {
    return this.currentTime
  }

  private node(id: NodeId): NodeState<Prov> {
    const node = this.byId.get(id)
    if (node === undefined)
      throw new RangeError(`unknown node ${JSON.stringify(id)}; nodes are ${this.nodes.join(', ')}`)
    return node
  }

  /** The live host of `node`; throws while it is crashed. */
  host(id: NodeId): Host<Prov> {
    const node = this.node(id)
    if (!node.up || node.host === undefined) throw new Error(`node ${id} is down`)
    return node.host
  }

  /** Every live host. */
  hosts(): Host<Prov>[] {
    return this.state.filter((n) => n.up && n.host !== undefined).map((n) => n.host!)
  }

  isUp(id: NodeId): boolean {
    return this.node(id).up
  }

  incarnation(id: NodeId): number {
    return this.node(id).incarnation
  }

  disk(id: NodeId): MemoryStorage {
    return this.node(id).disk
  }

  /** Starts a host on every node (incarnation 0). */
  async start(): Promise<void> {
    if (this.started) throw new Error('simulation already started')
    this.started = true
    for (const node of this.state) await this.boot(node)
  }

  /** Opens a group on every live host (or the given ones). */
  async openAll(
    spec: Omit<GroupSpec, 'members'> & { members?: readonly NodeId[] },
    on: readonly NodeId[] = this.nodes,
  ): Promise<void> {
    const members = spec.members ?? this.nodes
    for (const id of on) {
      if (!this.isUp(id)) continue
      this.configured.get(id)!.set(spec.port, { ...spec, members })
      await this.openConfigured(id, { ...spec, members })
    }
  }

  private async openConfigured(id: NodeId, spec: GroupSpec): Promise<void> {
    {
      const options = spec.options ?? this.options.groupOptions?.(spec.port, id)
      await this.host(id).open({
        port: spec.port,
        members: spec.members,
        ...(options === undefined ? {} : { options }),
      })
    }
  }

  private clockFor(node: NodeState<Prov>, incarnation: number): Clock {
    const sim = this
    const rate = () => 1 + node.driftPpm / 1e6
    // How late this host's timers ran (a pause queues them): the worst within 2 s.
    const late: { at: number; ms: number }[] = []
    return {
      now: () => node.clockOffset + sim.currentTime * rate(),
      lag(): number {
        while (late.length > 0 && late[0]!.at < sim.currentTime - 2_000) late.shift()
        let worst = 0
        for (const l of late) if (l.ms > worst) worst = l.ms
        return worst
      },
      setTimer(delayMs: number, callback: () => void): Timer {
        const delay = Number.isFinite(delayMs) && delayMs > 0 ? delayMs / rate() : 0
        let cancelled = false
        const due = sim.currentTime + delay
        const event = sim.queue.push(due, node.index, incarnation, () => {
          if (cancelled) return
          const ms = sim.currentTime - due
          if (ms > 0) {
            late.push({ at: sim.currentTime, ms })
            if (late.length > 256) late.shift()
          }
          callback()
        })
        return {
          cancel() {
            cancelled = true
            event.cancelled = true
          },
        }
      },
    }
  }

  private async boot(node: NodeState<Prov>): Promise<void> {
    node.incarnation++
    const incarnation = node.incarnation
    const logger = createLogger({
      level: this.options.logLevel ?? 'warn',
      now: () => this.currentTime,
      sink: (record) => {
        this.logs.push(record)
        const max = this.options.maxLogRecords ?? 10_000
        if (this.logs.length > max) this.logs.splice(0, this.logs.length - max)
      },
    })
    const host = await this.stackDef.start({
      transport: node.transport,
      storage: node.disk,
      clock: this.clockFor(node, incarnation),
      random: this.random.fork(`host/${node.id}/${incarnation}`),
      logger,
    })
    node.host = host
    node.up = true
    if (this.options.record !== false) this.attachRecorder(node, host)
  }

  private attachRecorder(node: NodeState<Prov>, host: Host<Prov>): void {
    const record = (r: HistoryRecord) => {
      this.history.add(r)
      const h = this.hash
      h.string(r.kind)
      h.string(r.node)
      h.string(r.id ?? '')
      if (r.data !== undefined) h.string(JSON.stringify(r.data))
    }
    // One flat object literal per record (no spreads, an optional field assigned after): the
    // recorder runs on every traced event, and an object spread or a spread-in literal takes
    // V8's slow path. The fields keep the order they always had.
    const message = (kind: RecordKind, m: TraceMessage, from?: NodeId): HistoryRecord => ({
      time: this.currentTime,
      node: node.id,
      incarnation: node.incarnation,
      kind,
      group: m.group,
      id: m.id,
      from,
      digest: m.digest,
      layer: m.layer,
      deps: m.deps,
      depth: m.depth,
    })
    host.events.on('trace.sent', (m) => record(message('sent', m)), 'sim')
    host.events.on('trace.delivered', (m) => record(message('delivered', m, m.from)), 'sim')
    host.events.on('trace.acknowledged', (m) => record(message('acknowledged', m)), 'sim')
    host.events.on('trace.stable', (m) => record(message('stable', m)), 'sim')
    host.events.on(
      'trace.wave',
      (w) => {
        const r: Writable<HistoryRecord> = {
          time: this.currentTime,
          node: node.id,
          incarnation: node.incarnation,
          kind: 'wave',
          group: w.group,
          depth: w.wave,
          ids: w.ids,
        }
        if (w.layer !== undefined) r.layer = w.layer
        record(r)
      },
      'sim',
    )
    host.events.on(
      'trace.record',
      // Whatever kinds packages declared: the recorder keeps them all, unread.
      (r: { kind: string; group: string; layer: string; data: unknown }) =>
        record({
          time: this.currentTime,
          node: node.id,
          incarnation: node.incarnation,
          kind: r.kind as RecordKind,
          group: r.group,
          layer: r.layer,
          data: r.data,
        }),
      'sim',
    )
    host.events.on(
      'trace.view',
      (v) => {
        const r: Writable<HistoryRecord> = {
          time: this.currentTime,
          node: node.id,
          incarnation: node.incarnation,
          kind: 'view',
          group: v.group,
          view: v.view,
          viewId: v.id,
        }
        if (v.layer !== undefined) r.layer = v.layer
        record(r)
      },
      'sim',
    )
    host.events.on(
      'group.opened',
      (g) =>
        record({
          time: this.currentTime,
          node: node.id,
          incarnation: node.incarnation,
          kind: 'opened',
          group: g.group,
          view: g.members,
        }),
      'sim',
    )
  }

  // ---- scheduling -----------------------------------------------------------------------

  /** Runs `fn` at virtual time `time` (a simulator event; may be async). */
  at(time: number, fn: () => void | Promise<void>): void {
    if (!(time >= this.currentTime))
      throw new RangeError(`cannot schedule at ${time}, now is ${this.currentTime}`)
    this.queue.push(time, -1, -1, fn)
  }

  /** Runs `fn` after `delayMs`. */
  after(delayMs: number, fn: () => void | Promise<void>): void {
    this.at(this.currentTime + Math.max(0, delayMs), fn)
  }

  /** Runs `fn` every `intervalMs` from now until `untilMs` (exclusive). */
  every(intervalMs: number, untilMs: number, fn: () => void | Promise<void>): void {
    if (!(intervalMs > 0)) throw new RangeError(`interval must be > 0, got ${intervalMs}`)
    const tick = (t: number) => {
      if (t >= untilMs) return
      this.at(t, async () => {
        tick(t + intervalMs)
        await fn()
      })
    }
    tick(this.currentTime + intervalMs)
  }

  // ---- host faults ----------------------------------------------------------------------

  /** Crashes `node` now: its in-memory state is gone and unsynced writes are lost. */
  crash(id: NodeId): void {
    const node = this.node(id)
    if (!node.up) return
    node.up = false
    node.host?.crash()
    node.host = undefined
    const corrupt = this.corruptOnCrash
    node.disk.crash(
      corrupt > 0 ? { corrupt: { probability: corrupt, random: this.diskRandom } } : {},
    )
    node.pausedUntil = 0
    this.history.add({
      time: this.currentTime,
      node: id,
      incarnation: node.incarnation,
      kind: 'crash',
    })
    this.hash.string(`crash:${id}`)
  }

  /** Restarts a crashed node: a new host on the same disk, then `onRestart` (recover groups). */
  async restart(id: NodeId): Promise<Host<Prov>> {
    const node = this.node(id)
    if (node.up) throw new Error(`node ${id} is up; crash it before restarting`)
    await this.boot(node)
    this.history.add({
      time: this.currentTime,
      node: id,
      incarnation: node.incarnation,
      kind: 'restart',
    })
    this.hash.string(`restart:${id}`)
    const host = node.host!
    if (this.options.onRestart !== undefined) await this.options.onRestart(host, id, this)
    else {
      await host.recoverGroups((port) => this.options.groupOptions?.(port, id))
      // An application re-opens its configured groups at start: a group whose record did
      // not reach the disk before the crash is opened afresh.
      for (const spec of this.configured.get(id)!.values()) {
        if (host.group(spec.port) === undefined) await this.openConfigured(id, spec)
      }
    }
    return host
  }

  /** Stops `node` from processing anything for `ms` (a GC pause or SIGSTOP); work queues up. */
  pause(id: NodeId, ms: number): void {
    if (!(ms >= 0 && Number.isFinite(ms)))
      throw new RangeError(`pause must be a finite duration >= 0, got ${ms}`)
    const node = this.node(id)
    node.pausedUntil = Math.max(node.pausedUntil, this.currentTime + ms)
    this.history.add({
      time: this.currentTime,
      node: id,
      incarnation: node.incarnation,
      kind: 'pause',
    })
  }

  /** Makes `node`'s clock run fast (ppm > 0) or slow (ppm < 0) from now on. */
  drift(id: NodeId, ppm: number): void {
    if (!(Math.abs(ppm) < 1e6)) throw new RangeError(`drift must be within ±1e6 ppm, got ${ppm}`)
    const node = this.node(id)
    // Keep local time continuous at the moment the rate changes.
    const localNow = node.clockOffset + this.currentTime * (1 + node.driftPpm / 1e6)
    node.driftPpm = ppm
    node.clockOffset = localNow - this.currentTime * (1 + ppm / 1e6)
  }

  /** Moves `node`'s clock forward by `ms` at once (timers keep their virtual deadlines). */
  jumpClock(id: NodeId, ms: number): void {
    if (!(ms >= 0 && Number.isFinite(ms)))
      throw new RangeError(`a clock jump must be >= 0 ms, got ${ms}`)
    this.node(id).clockOffset += ms
  }

  // ---- disk faults ----------------------------------------------------------------------

  /**
   * Changes the disk faults of every node from now on (what `disk` set at construction);
   * a field left out keeps its value. A fault plan uses it to draw disk corruption per run.
   */
  setDiskFaults(faults: DiskFaults): void {
    if (faults.corruptOnCrash !== undefined)
      this.corruptOnCrash = checkCorruptOnCrash(faults.corruptOnCrash, '')
  }

  /** The disk faults in force. */
  diskFaults(): Required<DiskFaults> {
    return { corruptOnCrash: this.corruptOnCrash }
  }

  // ---- running --------------------------------------------------------------------------

  /** Processes events in order until a stop condition; returns the number processed. */
  async run(options: RunOptions = {}): Promise<number> {
    const until =
      options.for !== undefined
        ? this.currentTime + options.for
        : (options.until ?? Number.POSITIVE_INFINITY)
    const maxEvents = options.maxEvents ?? Number.POSITIVE_INFINITY
    const stopWhen = options.stopWhen
    const queue = this.queue
    const state = this.state
    const hash = this.hash
    let processed = 0
    for (;;) {
      const next = queue.peek()
      if (next === undefined || next.time > until || processed >= maxEvents) break
      queue.pop()
      if (next.cancelled) continue
      if (next.host >= 0) {
        const node = state[next.host]!
        if (next.incarnation >= 0 && next.incarnation !== node.incarnation) continue
        if (node.pausedUntil > next.time) {
          queue.push(node.pausedUntil, next.host, next.incarnation, next.run)
          continue
        }
      }
      this.currentTime = next.time
      processed++
      hash.number(next.time)
      hash.word(next.host + 1)
      const pending = next.run()
      if (pending !== undefined) await this.settle(pending)
      if (this.settlePending) {
        this.settlePending = false
        for (let i = 0; i < SETTLE_HOPS; i++) await null
      }
      if (stopWhen?.()) break
    }
    if (
      until !== Number.POSITIVE_INFINITY &&
      until > this.currentTime &&
      processed < maxEvents &&
      !stopWhen?.()
    ) {
      this.currentTime = until
    }
    this.eventCount += processed
    return processed
  }

  /**
   * Lets an async event run on until it settles, or until it is plainly waiting for the
   * simulation itself (a sync, a message): then the loop goes on and the event finishes
   * later, at the virtual time its awaited thing happens. A rejection is kept in `errors`.
   */
  private async settle(pending: Promise<void>): Promise<void> {
    let settled = false
    pending.then(
      () => {
        settled = true
      },
      (error: unknown) => {
        settled = true
        this.errors.push(error)
      },
    )
    for (let i = 0; i < MAX_SETTLE_HOPS && !settled; i++) await null
  }

  /** Runs the checkers over the history so far. */
  check(checkers: readonly Checker[]): Violation[] {
    return runCheckers(checkers, this.history, { nodes: this.nodes, now: this.currentTime })
  }

  traceHash(): string {
    return this.hash.digest()
  }

  stats(): SimulationStats {
    return {
      events: this.eventCount,
      virtualMs: this.currentTime,
      pendingEvents: this.queue.size,
      network: { ...this.network.counters },
    }
  }
}
