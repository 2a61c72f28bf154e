/**
 * Protocols and sessions, after the x-kernel: a *protocol object* exists once per host, a
 * *session object* once per protocol per open group. A protocol is described by a factory
 * that declares what it requires, what it provides, and which events it raises and
 * observes; the framework checks the declarations (at compile time through `Stack.use`, at
 * start for JavaScript callers) and draws the graph from them (`host.describe()`).
 */
import type { CapabilitiesOf, Capability, CapabilityMap } from './capability.js'
import type { Clock } from './clock.js'
import type { Counters } from './counters.js'
import type { ConsulEvents, EventName } from './events.js'
import type { Logger } from './logger.js'
import type { MessageBuffer } from './message-buffer.js'
import type { Random } from './random.js'
import type { StableStorage, StorageOp } from './storage.js'
import type { NodeId } from './transport.js'

/** What `host.open` takes: the well-known port of the group and its members. */
export interface GroupSpec {
  /** Well-known port name, unique per host (e.g. `'directory'`). */
  readonly port: string
  /** Every member of the group, including this host. */
  readonly members: readonly NodeId[]
  /** Per-group options, read by the protocols that know them (unknown keys are ignored). */
  readonly options?: Readonly<Record<string, unknown>>
  /**
   * The group's **configuration**: 0 for the member list it was first opened with, one more
   * at each change of the list that adds members (a join, `SessionContext.reconfigure`). Each
   * configuration is its own conversation: its own wire tag and its own storage. Default 0;
   * an integer >= 0.
   */
  readonly configuration?: number
}

export interface GroupInfo {
  readonly port: string
  readonly members: readonly NodeId[]
  readonly self: NodeId
  readonly options: Readonly<Record<string, unknown>>
  /** True when the group is being re-created after a crash (`host.recoverGroups()`). */
  readonly restoring: boolean
  /** The configuration (`GroupSpec.configuration`; 0 unless members joined). */
  readonly configuration: number
  /**
   * True in the first open of a configuration this member moved into itself
   * (`reconfigure`): what the sessions' `carry` returned is in storage as their checkpoint.
   */
  readonly reconfigured: boolean
}

/** What `Session.carry` is told about the configuration that follows. */
export interface NextConfiguration {
  readonly configuration: number
  /** Its members, canonical order. */
  readonly members: readonly NodeId[]
  /** The members that were not in the current one. */
  readonly joined: readonly NodeId[]
  /** The member whose join request (the first of its wave) moved the group. */
  readonly decidedBy: NodeId
}

/**
 * Datagrams of a group's port that are not of its conversation: how a host outside the member
 * list (a new member, or one left behind by a configuration change) and the members talk
 * before it is in. Delivered from any peer of the transport; what a handler does with them is
 * its own business (count, rate-limit). `send` takes ownership of `payload`.
 */
export interface Lobby {
  /** Sends one datagram; a `to` that is not a peer of the transport throws `INVALID_ARGUMENT`. */
  send(to: NodeId, payload: Uint8Array): void
  /** Sets the one handler (a later call replaces it); `payload` is valid during the call only. */
  onReceive(handler: (from: NodeId, payload: Uint8Array) => void): void
}

/**
 * The group's share of the transport. One protocol per group claims it (normally Psync,
 * the bottom of the graph); messages are tagged with the group so several groups share a
 * transport. `send` and `broadcast` consume the buffer: do not reuse it afterwards.
 */
export interface GroupNetwork {
  send(to: NodeId, message: MessageBuffer): void
  broadcast(message: MessageBuffer): void
  /** Sets the handler for this group's incoming messages (from members only). */
  onReceive(handler: (from: NodeId, message: MessageBuffer) => void): void
}

/** The event bus as one session sees it: only declared events, handlers removed at close. */
export interface SessionEvents {
  on<K extends EventName>(name: K, handler: (payload: ConsulEvents[K]) => void): void
  emit<K extends EventName>(name: K, payload: ConsulEvents[K]): void
  has(name: EventName): boolean
}

/** Everything a session gets: typed lookups of lower protocols' controls, and services. */
export interface SessionContext<Req extends CapabilityMap> {
  readonly self: NodeId
  readonly group: GroupInfo
  /** The control object another protocol of this group provides under `capability`. */
  get<N extends keyof Req & string>(capability: Capability<N, Req[N]>): Req[N]
  /** Session-scoped clock: closing or crashing the session cancels its timers. */
  readonly clock: Clock
  /** A stream forked for this protocol and group. */
  readonly random: Random
  /** Stable storage under this protocol's and group's key prefix. */
  readonly storage: StableStorage
  readonly events: SessionEvents
  readonly log: Logger
  /** The protocol's counters (shared by its sessions) for `host.stats()`. */
  readonly counters: Counters
  /** Claims the group's network; a second claim in the same group throws. */
  claimNetwork(): GroupNetwork
  /** The group's sessions' states, for the coordinated checkpoint (`@consul/recovery`). */
  readonly checkpoints: GroupCheckpoints
  /** The group's lobby (one claimant per group; a second claim throws `NETWORK_CLAIMED`). */
  claimLobby(): Lobby
  /**
   * Moves the group into a later configuration (`next.configuration`, default the next one)
   * with `next.members` (this member among them): writes, in **one** storage batch, the
   * group's new record and `next.seed` — storage operations in this protocol's own key space
   * *of that configuration* (normally a checkpoint of the states the sessions' `carry` gave) —
   * syncs it, then closes every session (top first), opens the group again in the new
   * configuration (`reconfigured: true`, the same options, the open hooks run again) and
   * deletes what the old configuration left in storage. Resolves once the new group is open;
   * emits `group.reconfigured`. Bad arguments (members empty, without this host, not peers of
   * the transport; a configuration not above the current one) reject with `INVALID_ARGUMENT`
   * before anything is written.
   */
  /**
   * Closes every session (top first) and re-creates the group from storage, as
   * `Group.restart()` does (`restoring: true`, the open hooks run again): what Recovery does
   * itself once it has fetched the state of a configuration it moved into. Resolves once the
   * new group is open.
   */
  restart(): Promise<void>
  reconfigure(next: {
    readonly members: readonly NodeId[]
    readonly configuration?: number
    readonly seed?: readonly StorageOp[]
  }): Promise<void>
}

/** One session's state in a coordinated checkpoint. */
export interface SessionState {
  /** The protocol's name (`ProtocolFactory.name`). */
  readonly protocol: string
  readonly state: Uint8Array
}

/**
 * The checkpoint contract across a group's sessions. A session with state of its own beyond
 * Psync's log implements `Session.checkpoint` / `Session.restore`; the protocol that
 * coordinates checkpoints (Recovery) takes them all at once and writes them, with the wave,
 * in one storage batch, and after a crash gives each its state back before anything starts.
 */
export interface GroupCheckpoints {
  /**
   * Every session's `checkpoint()` (those that have one), bottom of the stack first;
   * `undefined` when any of them cannot be taken now (try again at a later wave boundary).
   */
  take(): readonly SessionState[] | undefined
  /** Every session's `carry(next)` that gave bytes, bottom first (for `reconfigure`'s seed). */
  carry(next: NextConfiguration): readonly SessionState[]
  /**
   * Gives each session its state back (`Session.restore`), bottom first. Only before the
   * group's sessions start (from a session's `open`); a state naming a protocol that is not in
   * this stack or has no `restore` throws `XKernelError('INVALID_ARGUMENT')` and restores
   * nothing.
   */
  restore(states: readonly SessionState[]): void
  /** The protocols whose sessions take part (have `checkpoint`), bottom first. */
  participants(): readonly string[]
}

/** What a protocol object gets once per host. */
export interface ProtocolContext {
  readonly self: NodeId
  readonly clock: Clock
  readonly random: Random
  readonly log: Logger
  readonly counters: Counters
}

/** A session: the control objects it provides, and its lifecycle hooks. */
export interface Session<Prov extends CapabilityMap> {
  /** One control object per provided capability, keyed by capability name. */
  readonly controls: Prov
  /** Called once every session of the group exists (lookups of any protocol work). */
  start?(): void
  /** Graceful close (not called on a crash). */
  close?(): void | Promise<void>
  /**
   * This session's state for the coordinated checkpoint, taken at a wave boundary of the
   * Order: bytes, or `undefined` when it cannot be taken now (say, a decision in progress) —
   * the checkpoint then waits for a later boundary. Sessions whose state Psync's log rebuilds
   * leave it out.
   */
  checkpoint?(): Uint8Array | undefined
  /** Takes back what `checkpoint()` returned, after a crash, before any session starts. */
  restore?(state: Uint8Array): void
  /**
   * This session's state for the *next* configuration (`SessionContext.reconfigure`), in
   * `checkpoint()`'s format, as of the start of the next configuration's conversation: given
   * back through `restore` when the group opens in it. Taken at a wave boundary; `undefined`
   * (or no `carry`) starts the session fresh there.
   */
  carry?(next: NextConfiguration): Uint8Array | undefined
}

export interface ProtocolInstance<Req extends CapabilityMap, Prov extends CapabilityMap> {
  open(ctx: SessionContext<Req>): Session<Prov>
  /** Extra numbers for `host.stats()`, merged with the protocol's counters. */
  stats?(): Record<string, number>
}

export interface ProtocolFactory<Req extends CapabilityMap, Prov extends CapabilityMap> {
  readonly name: string
  readonly requires: readonly Capability[]
  readonly provides: readonly Capability[]
  readonly raises: readonly EventName[]
  readonly observes: readonly EventName[]
  create(ctx: ProtocolContext): ProtocolInstance<Req, Prov>
  /** Phantom: the requirement and provision maps. Never set at runtime. */
  readonly __types?: { readonly requires: Req; readonly provides: Prov }
}

// biome-ignore lint/suspicious/noExplicitAny: the widest factory, for heterogeneous lists
export type AnyProtocolFactory = ProtocolFactory<any, any>

export interface ProtocolDefinition<
  R extends readonly Capability[],
  P extends readonly Capability[],
> {
  readonly name: string
  readonly requires?: R
  readonly provides?: P
  readonly raises?: readonly EventName[]
  readonly observes?: readonly EventName[]
  /**
   * `NoInfer`: the capability lists alone fix `R` and `P`. Inferring from what `create`
   * returns too would leave the control objects without a contextual type (their
   * callbacks' parameters would be implicitly `any`).
   */
  create(
    ctx: ProtocolContext,
  ): ProtocolInstance<NoInfer<CapabilitiesOf<R>>, NoInfer<CapabilitiesOf<P>>>
}

/**
 * Declares a protocol factory; the capability lists give it its types.
 *
 * ```ts
 * const flood = defineProtocol({
 *   name: 'flood',
 *   provides: [FLOOD],
 *   create: () => ({ open: (ctx) => ({ controls: { flood: makeControl(ctx) } }) }),
 * })
 * ```
 */
export function defineProtocol<
  const R extends readonly Capability[] = [],
  const P extends readonly Capability[] = [],
>(definition: ProtocolDefinition<R, P>): ProtocolFactory<CapabilitiesOf<R>, CapabilitiesOf<P>> {
  if (typeof definition?.name !== 'string' || definition.name.length === 0) {
    throw new TypeError('defineProtocol needs a non-empty name')
  }
  if (typeof definition.create !== 'function') {
    throw new TypeError(`protocol ${definition.name}: create must be a function`)
  }
  return Object.freeze({
    name: definition.name,
    requires: Object.freeze([...(definition.requires ?? [])]),
    provides: Object.freeze([...(definition.provides ?? [])]),
    raises: Object.freeze([...(definition.raises ?? [])]),
    observes: Object.freeze([...(definition.observes ?? [])]),
    create: definition.create,
  })
}
