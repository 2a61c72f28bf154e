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
import type { StableStorage } from './storage.js'
import type { NodeId } from './transport.js'

/** What `host.open` takes: the well-known port of the group and its members. */
export interface GroupSpec {
  /** Well-known port name, unique per host (e.g. `'directory'`). */
  readonly port: string
  /** Every member of the group, including this host. */
  readonly members: readonly NodeId[]
  /** Per-group options, read by the protocols that know them (unknown keys are ignored). */
  readonly options?: Readonly<Record<string, unknown>>
}

export interface GroupInfo {
  readonly port: string
  readonly members: readonly NodeId[]
  readonly self: NodeId
  readonly options: Readonly<Record<string, unknown>>
  /** True when the group is being re-created after a crash (`host.recoverGroups()`). */
  readonly restoring: boolean
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
