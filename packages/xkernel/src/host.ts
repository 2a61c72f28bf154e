/**
 * The host: one process's instance of a configured protocol graph, with its services. It
 * opens and closes groups (one session per protocol per group), routes the transport's
 * datagrams to the right group, and can be *crashed*: every in-memory object is dropped and
 * every timer silenced, leaving only what reached stable storage. A new host started on the
 * same storage re-creates the groups with `recoverGroups()`.
 *
 * Wire: every datagram the host sends starts with a 4-byte group tag (a hash of the port
 * name and the member set, `groupTag`: hosts that disagree on either cannot talk); the
 * transport adds its own framing and integrity check around it. Datagrams that are too
 * short, for an unknown group, or from a non-member are counted and dropped.
 */
import { realClock } from './adapters/real-clock.js'
import { systemRandom } from './adapters/real-random.js'
import type { Capability, CapabilityMap } from './capability.js'
import { type Clock, ScopedClock } from './clock.js'
import { Counters } from './counters.js'
import { DecodeError, StorageCorruptedError, XKernelError } from './errors.js'
import { type ConsulEvents, EventBus, type EventName } from './events.js'
import { createLogger, type Logger } from './logger.js'
import { canonicalMembers, groupTag, lobbyTag, sessionScope } from './members.js'
import { memoryStorage } from './memory-storage.js'
import { MessageBuffer } from './message-buffer.js'
import type {
  AnyProtocolFactory,
  GroupCheckpoints,
  GroupInfo,
  GroupNetwork,
  GroupSpec,
  Lobby,
  ProtocolInstance,
  Session,
  SessionContext,
  SessionEvents,
  SessionState,
} from './protocol.js'
import type { Random } from './random.js'
import { type StableStorage, type StorageOp, scopedStorage } from './storage.js'
import type { NodeId, Transport } from './transport.js'

export interface HostServices {
  readonly transport: Transport
  /** Default: a fresh in-memory storage (not durable). */
  readonly storage?: StableStorage
  /** Default: the real clock. */
  readonly clock?: Clock
  /** Default: seeded from the operating system. */
  readonly random?: Random
  /** Default: JSON lines on stderr at level `warn`. */
  readonly logger?: Logger
}

export type HostState = 'running' | 'crashed' | 'stopped'

export interface OpenHooks<Prov extends CapabilityMap> {
  /**
   * Runs once every session of the group exists and before any starts: controls can be
   * looked up and handlers attached, and they will see what the protocols replay from
   * storage as they start (Psync re-delivers its log, Orders re-deliver commands).
   */
  beforeStart?(group: Group<Prov>): void
}

export interface Group<Prov extends CapabilityMap> {
  readonly port: string
  readonly members: readonly NodeId[]
  readonly restoring: boolean
  /** The configuration (`GroupSpec.configuration`): one more at each change that adds members. */
  readonly configuration: number
  /** The control object a protocol of this group provides. */
  get<N extends keyof Prov & string>(capability: Capability<N, Prov[N]>): Prov[N]
  /** Closes every session of the group (top of the stack first) and forgets it. */
  close(): Promise<void>
  /**
   * Closes every session of the group (top first) keeping what is in storage, and re-creates
   * them from it, as after a crash (`restoring: true`): what Recovery asks for after a state
   * transfer. Resolves with the new group; this handle and the controls taken from it are
   * closed; the hooks `open` was given run again. Rejects as `recoverGroups` does when the
   * sessions cannot be re-created (the group is then closed, its record kept for the next try).
   */
  restart(): Promise<Group<Prov>>
}

export interface ProtocolDescription {
  readonly name: string
  readonly requires: readonly string[]
  readonly provides: readonly string[]
  readonly raises: readonly string[]
  readonly observes: readonly string[]
}

export interface HostDescription {
  readonly self: NodeId
  readonly state: HostState
  readonly protocols: readonly ProtocolDescription[]
  readonly groups: readonly {
    readonly port: string
    readonly members: readonly NodeId[]
    readonly configuration: number
  }[]
  /**
   * Every session, bottom of the stack first (the order they open, restore and start in):
   * whether it takes part in the coordinated checkpoint, and whether this incarnation gave it
   * a checkpoint state back (the rest rebuild from Psync's log, or hold no state).
   */
  readonly sessions: readonly {
    readonly group: string
    readonly protocol: string
    readonly checkpoint: boolean
    readonly restored: boolean
  }[]
  /** Direct dependencies: `from` calls the control `to` provides under `capability`. */
  readonly edges: readonly {
    readonly from: string
    readonly to: string
    readonly capability: string
  }[]
  /** Indirect dependencies: `from` raises `event`, `to` observes it. */
  readonly eventEdges: readonly {
    readonly event: string
    readonly from: string
    readonly to: string
  }[]
}

export type HostStats = Record<string, Record<string, number>>

export interface Host<Prov extends CapabilityMap> {
  readonly self: NodeId
  readonly state: HostState
  readonly clock: Clock
  readonly random: Random
  readonly events: EventBus
  readonly log: Logger
  readonly storage: StableStorage
  /**
   * Opens a group: creates one session per protocol, bottom first, calls
   * `hooks.beforeStart(group)`, then starts the sessions. Attach delivery handlers in
   * `beforeStart` to see what protocols replay from storage when they start.
   */
  open(spec: GroupSpec, hooks?: OpenHooks<Prov>): Promise<Group<Prov>>
  group(port: string): Group<Prov> | undefined
  /**
   * The move of group `port` into its next configuration, or its restart (`group.restart()`),
   * while one is under way — between the old handle closing and the new one opening,
   * `group(port)` is `undefined`: resolves with the new handle, rejects if it fails.
   * `undefined` when none is under way.
   */
  moving(port: string): Promise<Group<Prov>> | undefined
  groups(): readonly Group<Prov>[]
  /**
   * The lobby of `port` for a host that is not (yet) a member of it: what a new member uses to
   * ask to join (`@consul/recovery`'s `joinGroup`). Datagrams for the port's lobby reach this
   * handle and, when the group is open here, the group's own lobby too. `close()` stops it.
   */
  lobby(port: string): Lobby & { close(): void }
  /** The groups recorded in storage (open and not closed when the host last ran). */
  storedGroups(): GroupSpec[]
  /**
   * Re-creates every stored group with `restoring: true`, so sessions rebuild their state
   * from storage. `optionsFor` supplies per-group options (they are not stored: they may
   * hold functions).
   */
  recoverGroups(
    optionsFor?: (port: string) => Readonly<Record<string, unknown>> | undefined,
    hooks?: OpenHooks<Prov>,
  ): Promise<Group<Prov>[]>
  describe(): HostDescription
  /** Counters by protocol, plus `xkernel` and `transport`. */
  stats(): HostStats
  /** Drops all in-memory state at once: no close handlers, no goodbye messages. */
  crash(): void
  /** Graceful shutdown: closes every group, then the transport and the storage. */
  stop(): Promise<void>
}

const GROUP_KEY_PREFIX = 'xkernel/group/'
/** Old configurations' keys are deleted in batches of this many operations. */
const CLEANUP_BATCH = 4096
/** Ports name storage prefixes and log fields: keep them plain. */
const PORT_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/
const encoder = new TextEncoder()
const decoder = new TextDecoder()

interface ProtocolEntry {
  readonly factory: AnyProtocolFactory
  // biome-ignore lint/suspicious/noExplicitAny: heterogeneous protocol instances
  readonly instance: ProtocolInstance<any, any>
  readonly counters: Counters
}

interface SessionEntry {
  readonly protocol: string
  readonly session: Session<CapabilityMap>
  readonly clock: ScopedClock
  readonly unsubscribe: (() => void)[]
}

class GroupImpl<Prov extends CapabilityMap> implements Group<Prov> {
  readonly sessions: SessionEntry[] = []
  readonly controls = new Map<string, unknown>()
  readonly memberSet: Set<NodeId>
  receive: ((from: NodeId, message: MessageBuffer) => void) | undefined
  networkOwner: string | undefined
  lobbyReceive: ((from: NodeId, payload: Uint8Array) => void) | undefined
  lobbyOwner: string | undefined
  /** The hooks `open` was given: run again when the group moves to a new configuration. */
  hooks: OpenHooks<Prov> | undefined
  open = true
  /** The sessions' `start()` ran (checkpoint states can no longer be restored). */
  started = false
  /** Protocols whose sessions were given a checkpoint state back, in order. */
  readonly restored: string[] = []
  readonly checkpoints: GroupCheckpoints = {
    take: () => {
      const out: SessionState[] = []
      for (const entry of this.sessions) {
        if (entry.session.checkpoint === undefined) continue
        const state = entry.session.checkpoint()
        if (state === undefined) return undefined
        if (!(state instanceof Uint8Array)) {
          throw new XKernelError(
            'INVALID_ARGUMENT',
            `protocol ${entry.protocol}: checkpoint() must return bytes or undefined`,
          )
        }
        out.push({ protocol: entry.protocol, state })
      }
      return out
    },
    carry: (next) => {
      const out: SessionState[] = []
      for (const entry of this.sessions) {
        const state = entry.session.carry?.(next)
        if (state === undefined) continue
        if (!(state instanceof Uint8Array)) {
          throw new XKernelError(
            'INVALID_ARGUMENT',
            `protocol ${entry.protocol}: carry() must return bytes or undefined`,
          )
        }
        out.push({ protocol: entry.protocol, state })
      }
      return out
    },
    restore: (states) => {
      if (this.started) {
        throw new XKernelError(
          'INVALID_ARGUMENT',
          `group ${this.port}: checkpoint states are restored before the sessions start (from a session's open)`,
        )
      }
      if (!Array.isArray(states)) {
        throw new XKernelError('INVALID_ARGUMENT', 'restore() takes a list of { protocol, state }')
      }
      const plan: [SessionEntry, Uint8Array][] = []
      for (const item of states as readonly SessionState[]) {
        const entry = this.sessions.find((e) => e.protocol === item?.protocol)
        if (entry?.session.restore === undefined || !(item.state instanceof Uint8Array)) {
          throw new XKernelError(
            'INVALID_ARGUMENT',
            `group ${this.port}: no session of protocol ${String(item?.protocol)} takes a checkpoint state`,
          )
        }
        plan.push([entry, item.state])
      }
      // Bottom of the stack first, whatever order the states came in.
      plan.sort((a, b) => this.sessions.indexOf(a[0]) - this.sessions.indexOf(b[0]))
      for (const [entry, state] of plan) {
        entry.session.restore!(state)
        this.restored.push(entry.protocol)
      }
    },
    participants: () =>
      this.sessions.filter((e) => e.session.checkpoint !== undefined).map((e) => e.protocol),
  }

  constructor(
    readonly host: HostImpl<Prov>,
    readonly info: GroupInfo,
    readonly tag: number,
  ) {
    this.memberSet = new Set(info.members)
  }

  get port(): string {
    return this.info.port
  }

  get members(): readonly NodeId[] {
    return this.info.members
  }

  get restoring(): boolean {
    return this.info.restoring
  }

  get configuration(): number {
    return this.info.configuration
  }

  get<N extends keyof Prov & string>(capability: Capability<N, Prov[N]>): Prov[N] {
    if (!this.open) {
      throw new XKernelError('GROUP_CLOSED', `group ${this.port} is closed`)
    }
    if (!this.controls.has(capability?.name)) {
      throw new XKernelError(
        'UNKNOWN_CAPABILITY',
        `no protocol in group ${this.port} provides capability '${capability?.name}'`,
      )
    }
    return this.controls.get(capability.name) as Prov[N]
  }

  close(): Promise<void> {
    return this.host.closeGroup(this)
  }

  async restart(): Promise<Group<Prov>> {
    if (!this.open)
      throw new XKernelError('GROUP_CLOSED', `group ${this.port} is closed: nothing to restart`)
    const spec: GroupSpec = {
      port: this.port,
      members: this.members,
      options: this.info.options,
      configuration: this.configuration,
    }
    return this.host.track(
      this.port,
      (async () => {
        await this.host.closeGroup(this, true)
        return this.host.reopenGroup(spec, this.hooks)
      })(),
    )
  }

  /** Silences every session without running close handlers. */
  drop(): void {
    this.open = false
    this.receive = undefined
    for (const entry of this.sessions) {
      entry.clock.close()
      for (const off of entry.unsubscribe) off()
    }
  }
}

class HostImpl<Prov extends CapabilityMap> implements Host<Prov> {
  readonly self: NodeId
  readonly clock: Clock
  readonly random: Random
  readonly events: EventBus
  readonly log: Logger
  readonly storage: StableStorage
  private readonly transport: Transport
  private readonly hostClock: ScopedClock
  private readonly protocols: ProtocolEntry[] = []
  private readonly byPort = new Map<string, GroupImpl<Prov>>()
  /** Moves into a next configuration and restarts under way (see `moving`). */
  private readonly moves = new Map<string, Promise<Group<Prov>>>()
  private readonly byTag = new Map<number, GroupImpl<Prov>>()
  /** Lobby tag → port, for every open group and every host lobby. */
  private readonly lobbyPorts = new Map<number, string>()
  private readonly hostLobbies = new Map<string, (from: NodeId, payload: Uint8Array) => void>()
  private readonly counters = new Counters()
  state: HostState = 'running'

  constructor(factories: readonly AnyProtocolFactory[], services: HostServices) {
    if (services === null || typeof services !== 'object' || services.transport === undefined) {
      throw new XKernelError('INVALID_ARGUMENT', 'start() needs services with at least a transport')
    }
    this.transport = services.transport
    this.self = services.transport.self
    this.hostClock = new ScopedClock(services.clock ?? realClock())
    this.clock = this.hostClock
    this.random = services.random ?? systemRandom()
    this.storage = services.storage ?? memoryStorage()
    const baseLog = services.logger ?? createLogger({ level: 'warn', now: () => this.clock.now() })
    this.log = baseLog.child({ host: this.self })
    this.events = new EventBus((event, owner, error) => {
      this.counters.inc('eventHandlerErrors')
      this.log.error('event handler threw', { event, owner, error: String(error) })
    })
    for (const factory of factories) {
      const counters = new Counters()
      const instance = factory.create({
        self: this.self,
        clock: this.clock,
        random: this.random.fork(factory.name),
        log: this.log.child({ protocol: factory.name }),
        counters,
      })
      this.protocols.push({ factory, instance, counters })
    }
    this.transport.onReceive((from, data) => this.receive(from, data))
  }

  private checkRunning(): void {
    if (this.state === 'crashed') {
      throw new XKernelError(
        'HOST_CRASHED',
        `host ${this.self} has crashed; start a new host on its storage`,
      )
    }
    if (this.state === 'stopped') {
      throw new XKernelError('HOST_STOPPED', `host ${this.self} is stopped`)
    }
  }

  private receive(from: NodeId, data: Uint8Array): void {
    if (this.state !== 'running') return
    if (data.length < 4) {
      this.counters.inc('droppedShort')
      return
    }
    const message = MessageBuffer.wrap(data)
    const tag = message.popU32()
    const group = this.byTag.get(tag)
    if (group === undefined) {
      const lobby = this.lobbyPorts.get(tag)
      if (lobby !== undefined) {
        this.receiveLobby(lobby, from, message.view())
        return
      }
      this.counters.inc('droppedUnknownGroup')
      return
    }
    if (!group.memberSet.has(from)) {
      this.counters.inc('droppedNonMember')
      return
    }
    const handler = group.receive
    if (handler === undefined) {
      this.counters.inc('droppedNoReceiver')
      return
    }
    try {
      handler(from, message)
    } catch (error) {
      if (DecodeError.isInstance(error)) {
        // A protocol that lets a decode error escape still must not crash the host.
        this.counters.inc('droppedMalformed')
        this.log.debug('malformed message', { group: group.port, from, error: error.message })
      } else {
        this.counters.inc('receiveHandlerErrors')
        this.log.error('receive handler threw', { group: group.port, from, error: String(error) })
      }
    }
  }

  private receiveLobby(port: string, from: NodeId, payload: Uint8Array): void {
    const handlers = [this.byPort.get(port)?.lobbyReceive, this.hostLobbies.get(port)]
    let delivered = false
    for (const handler of handlers) {
      if (handler === undefined) continue
      delivered = true
      try {
        handler(from, payload)
      } catch (error) {
        this.counters.inc('receiveHandlerErrors')
        this.log.error('lobby handler threw', { group: port, from, error: String(error) })
      }
    }
    if (delivered) this.counters.inc('lobbyReceived')
    else this.counters.inc('droppedNoReceiver')
  }

  /** Stops taking `port`'s lobby datagrams once neither its group nor a host lobby is open. */
  private releaseLobbyTag(port: string): void {
    if (!this.byPort.has(port) && !this.hostLobbies.has(port))
      this.lobbyPorts.delete(lobbyTag(port))
  }

  private lobbySend(port: string, to: NodeId, payload: Uint8Array): void {
    if (to === this.self || !this.transport.peers().includes(to)) {
      throw new XKernelError(
        'INVALID_ARGUMENT',
        `lobby of ${port}: cannot send to ${to}, not a peer of this host's transport`,
      )
    }
    const message = MessageBuffer.wrap(payload.slice())
    message.pushU32(lobbyTag(port))
    this.counters.inc('lobbySent')
    this.transport.send(to, message.view())
  }

  lobby(port: string): Lobby & { close(): void } {
    this.checkRunning()
    if (typeof port !== 'string' || !PORT_PATTERN.test(port)) {
      throw new XKernelError('INVALID_ARGUMENT', `lobby(): bad port ${JSON.stringify(port)}`)
    }
    if (this.hostLobbies.has(port)) {
      throw new XKernelError('NETWORK_CLAIMED', `the lobby of ${port} is already open on this host`)
    }
    let open = true
    this.hostLobbies.set(port, () => {})
    this.lobbyPorts.set(lobbyTag(port), port)
    return {
      send: (to, payload) => {
        if (!open || this.state !== 'running') {
          this.counters.inc('sendsAfterClose')
          return
        }
        this.lobbySend(port, to, payload)
      },
      onReceive: (handler) => {
        if (typeof handler !== 'function')
          throw new XKernelError('INVALID_ARGUMENT', 'lobby onReceive takes a function')
        if (open) this.hostLobbies.set(port, handler)
      },
      close: () => {
        if (!open) return
        open = false
        this.hostLobbies.delete(port)
        this.releaseLobbyTag(port)
      },
    }
  }

  async open(spec: GroupSpec, hooks?: OpenHooks<Prov>): Promise<Group<Prov>> {
    return this.openGroup(spec, false, hooks)
  }

  private validateSpec(spec: GroupSpec): void {
    if (spec === null || typeof spec !== 'object') {
      throw new XKernelError('INVALID_ARGUMENT', 'open() takes { port, members, options? }')
    }
    if (typeof spec.port !== 'string' || !PORT_PATTERN.test(spec.port)) {
      throw new XKernelError(
        'INVALID_ARGUMENT',
        `group port must be 1 to 100 characters of letters, digits, '.', '_' or '-' (starting with a letter or digit), got ${JSON.stringify(spec.port)}`,
      )
    }
    if (!Array.isArray(spec.members) || spec.members.length === 0) {
      throw new XKernelError(
        'INVALID_ARGUMENT',
        `group ${spec.port}: members must be a non-empty array of node ids`,
      )
    }
    const seen = new Set<string>()
    for (const member of spec.members) {
      if (typeof member !== 'string' || member.length === 0) {
        throw new XKernelError(
          'INVALID_ARGUMENT',
          `group ${spec.port}: member ids must be non-empty strings`,
        )
      }
      if (seen.has(member)) {
        throw new XKernelError(
          'INVALID_ARGUMENT',
          `group ${spec.port}: member ${member} is listed twice`,
        )
      }
      seen.add(member)
    }
    const reachable = new Set(this.transport.peers())
    for (const member of seen) {
      if (member !== this.self && !reachable.has(member)) {
        throw new XKernelError(
          'INVALID_ARGUMENT',
          `group ${spec.port}: member ${member} is not a peer of this host's transport; add it to the transport's peers`,
        )
      }
    }
    if (!seen.has(this.self)) {
      throw new XKernelError(
        'INVALID_ARGUMENT',
        `group ${spec.port}: members must include this host (${this.self})`,
      )
    }
    if (spec.options !== undefined && (spec.options === null || typeof spec.options !== 'object')) {
      throw new XKernelError('INVALID_ARGUMENT', `group ${spec.port}: options must be an object`)
    }
    const c = spec.configuration
    if (c !== undefined && (!Number.isSafeInteger(c) || c < 0)) {
      throw new XKernelError(
        'INVALID_ARGUMENT',
        `group ${spec.port}: configuration must be an integer >= 0, got ${String(c)}`,
      )
    }
  }

  private async openGroup(
    spec: GroupSpec,
    restoring: boolean,
    hooks?: OpenHooks<Prov>,
    reconfigured = false,
  ): Promise<Group<Prov>> {
    this.checkRunning()
    this.validateSpec(spec)
    if (this.byPort.has(spec.port)) {
      throw new XKernelError('GROUP_EXISTS', `group ${spec.port} is already open on ${this.self}`)
    }
    const configuration = spec.configuration ?? 0
    const tag = groupTag(spec.port, spec.members, configuration)
    const clash = this.byTag.get(tag)
    if (clash !== undefined) {
      throw new XKernelError(
        'GROUP_EXISTS',
        `group ports ${clash.port} and ${spec.port} hash to the same wire tag; rename one`,
      )
    }
    const info: GroupInfo = Object.freeze({
      port: spec.port,
      // A set: every host lists the members in the same order, whatever order it was given.
      members: Object.freeze(canonicalMembers(spec.members)),
      self: this.self,
      options: Object.freeze({ ...(spec.options ?? {}) }),
      restoring,
      configuration,
      reconfigured,
    })
    // Record the group so a restarted host can re-create it, before any session runs.
    this.storage.put(
      GROUP_KEY_PREFIX + spec.port,
      groupRecord(spec.port, info.members, configuration),
    )
    // What an earlier configuration of this port left here is of no use any more.
    if (configuration > 0) this.deleteOtherConfigurations(spec.port, configuration)
    const group = new GroupImpl<Prov>(this, info, tag)
    group.hooks = hooks
    this.byPort.set(spec.port, group)
    this.byTag.set(tag, group)
    this.lobbyPorts.set(lobbyTag(spec.port), spec.port)
    try {
      for (const entry of this.protocols) {
        const sessionEntry = this.openSession(group, entry)
        group.sessions.push(sessionEntry)
        for (const cap of entry.factory.provides) {
          const control = (sessionEntry.session.controls as Record<string, unknown>)[cap.name]
          if (control === undefined) {
            throw new XKernelError(
              'MISSING_CAPABILITY',
              `protocol ${entry.factory.name} declares capability '${cap.name}' but its session has no control for it`,
            )
          }
          group.controls.set(cap.name, control)
        }
      }
      hooks?.beforeStart?.(group)
      group.started = true
      for (const entry of group.sessions) entry.session.start?.()
    } catch (error) {
      group.drop()
      this.byPort.delete(spec.port)
      this.byTag.delete(tag)
      this.releaseLobbyTag(spec.port)
      // A failed recovery must not forget the group: the next restart may succeed.
      if (!restoring) this.storage.delete(GROUP_KEY_PREFIX + spec.port)
      throw error
    }
    this.events.emit('group.opened', { group: spec.port, members: info.members })
    this.log.info('group opened', { group: spec.port, members: info.members, restoring })
    return group
  }

  private openSession(group: GroupImpl<Prov>, entry: ProtocolEntry): SessionEntry {
    const { factory } = entry
    const protocol = factory.name
    const clock = new ScopedClock(this.hostClock)
    const unsubscribe: (() => void)[] = []
    const raises = new Set<EventName>(factory.raises)
    const observes = new Set<EventName>(factory.observes)
    const requires = new Set(factory.requires.map((c) => c.name))
    const events: SessionEvents = {
      on: (name, handler) => {
        if (!observes.has(name)) {
          throw new XKernelError(
            'INVALID_ARGUMENT',
            `protocol ${protocol} observes '${String(name)}' without declaring it in observes`,
          )
        }
        unsubscribe.push(this.events.on(name, handler, protocol))
      },
      emit: (name, payload) => {
        if (!raises.has(name)) {
          throw new XKernelError(
            'INVALID_ARGUMENT',
            `protocol ${protocol} raises '${String(name)}' without declaring it in raises`,
          )
        }
        if (group.open) this.events.emit(name, payload as ConsulEvents[typeof name])
      },
      has: (name) => this.events.has(name),
    }
    const ctx: SessionContext<CapabilityMap> = {
      self: this.self,
      group: group.info,
      get: (capability) => {
        if (!requires.has(capability?.name)) {
          throw new XKernelError(
            'UNKNOWN_CAPABILITY',
            `protocol ${protocol} looks up '${capability?.name}' without declaring it in requires`,
          )
        }
        const control = group.controls.get(capability.name)
        if (control === undefined) {
          throw new XKernelError(
            'UNKNOWN_CAPABILITY',
            `capability '${capability.name}' is not open yet`,
          )
        }
        return control as never
      },
      clock,
      random: this.random.fork(`${protocol}/${group.port}`),
      storage: scopedStorage(
        this.storage,
        sessionScope(protocol, group.port, group.configuration),
        {
          live: () => group.open && this.state === 'running',
          onDeadWrite: () => this.counters.inc('writesAfterClose'),
        },
      ),
      events,
      log: this.log.child({ protocol, group: group.port }),
      counters: entry.counters,
      claimNetwork: () => this.claimNetwork(group, protocol),
      checkpoints: group.checkpoints,
      claimLobby: () => {
        if (group.lobbyOwner !== undefined) {
          throw new XKernelError(
            'NETWORK_CLAIMED',
            `protocol ${protocol} claims the lobby of group ${group.port}, which ${group.lobbyOwner} already holds`,
          )
        }
        group.lobbyOwner = protocol
        return {
          send: (to, payload) => {
            if (!group.open || this.state !== 'running') {
              this.counters.inc('sendsAfterClose')
              return
            }
            this.lobbySend(group.port, to, payload)
          },
          onReceive: (handler) => {
            if (typeof handler !== 'function')
              throw new XKernelError('INVALID_ARGUMENT', 'lobby onReceive takes a function')
            group.lobbyReceive = handler
          },
        }
      },
      restart: async () => {
        await group.restart()
      },
      reconfigure: async (next) => {
        await this.reconfigureGroup(group, protocol, next)
      },
    }
    let session: Session<CapabilityMap>
    try {
      session = entry.instance.open(ctx) as Session<CapabilityMap>
      if (session === null || typeof session !== 'object' || typeof session.controls !== 'object') {
        throw new XKernelError(
          'INVALID_ARGUMENT',
          `protocol ${protocol}: open() must return { controls }`,
        )
      }
    } catch (error) {
      // The group's rollback only reaches sessions that finished opening: silence this one
      // here, or the timers and handlers it set before failing would outlive it.
      clock.close()
      for (const off of unsubscribe) off()
      throw error
    }
    return { protocol, session, clock, unsubscribe }
  }

  private claimNetwork(group: GroupImpl<Prov>, protocol: string): GroupNetwork {
    if (group.networkOwner !== undefined) {
      throw new XKernelError(
        'NETWORK_CLAIMED',
        `protocol ${protocol} claims the network of group ${group.port}, which ${group.networkOwner} already holds`,
      )
    }
    group.networkOwner = protocol
    const counters = this.counters
    const transport = this.transport
    const live = () => group.open && this.state === 'running'
    return {
      send: (to, message) => {
        if (!live()) {
          counters.inc('sendsAfterClose')
          return
        }
        if (!group.memberSet.has(to) || to === this.self) {
          throw new XKernelError(
            'INVALID_ARGUMENT',
            `group ${group.port}: cannot send to ${to}, not a peer`,
          )
        }
        message.pushU32(group.tag)
        transport.send(to, message.view())
      },
      broadcast: (message) => {
        if (!live()) {
          counters.inc('sendsAfterClose')
          return
        }
        message.pushU32(group.tag)
        const bytes = message.view()
        const peers = transport.peers()
        // Same size is not enough: the transport's peers must be exactly the other members.
        if (
          group.memberSet.size === peers.length + 1 &&
          peers.every((peer) => group.memberSet.has(peer))
        ) {
          transport.broadcast(bytes)
        } else {
          for (const member of group.members)
            if (member !== this.self) transport.send(member, bytes)
        }
      },
      onReceive: (handler) => {
        group.receive = handler
      },
    }
  }

  group(port: string): Group<Prov> | undefined {
    return this.byPort.get(port)
  }

  moving(port: string): Promise<Group<Prov>> | undefined {
    return this.moves.get(port)
  }

  groups(): readonly Group<Prov>[] {
    return [...this.byPort.values()]
  }

  /**
   * The groups this host's storage remembers. A record that cannot be read — unparsable, or
   * failing its checksum (a write torn by a crash: the record of a group opened just before
   * it) — is counted, logged and skipped, never thrown: the application opens its configured
   * groups again, as it does for one never recorded.
   */
  storedGroups(): GroupSpec[] {
    const specs: GroupSpec[] = []
    let start: string | undefined
    for (;;) {
      try {
        for (const { key, value } of this.storage.scan({
          prefix: GROUP_KEY_PREFIX,
          ...(start === undefined ? {} : { start }),
        })) {
          start = `${key}\u0000`
          const spec = parseGroupRecord(value)
          if (spec !== undefined) specs.push(spec)
          else {
            this.counters.inc('unreadableGroupRecords')
            this.log.warn('unreadable group record in storage', { key })
          }
        }
        return specs
      } catch (error) {
        if (!StorageCorruptedError.isInstance(error)) throw error
        this.counters.inc('unreadableGroupRecords')
        this.log.warn('corrupted group record in storage skipped', {
          key: error.key,
          detail: error.message,
        })
        start = `${error.key}\u0000`
      }
    }
  }

  /** `SessionContext.reconfigure`: the group in its next configuration (see there). */
  async reconfigureGroup(
    group: GroupImpl<Prov>,
    protocol: string,
    next: {
      readonly members: readonly NodeId[]
      readonly configuration?: number
      readonly seed?: readonly StorageOp[]
    },
  ): Promise<Group<Prov>> {
    this.checkRunning()
    if (!group.open || this.byPort.get(group.port) !== group) {
      throw new XKernelError(
        'GROUP_CLOSED',
        `group ${group.port} is closed: nothing to reconfigure`,
      )
    }
    const configuration = next?.configuration ?? group.configuration + 1
    if (!Number.isSafeInteger(configuration) || configuration <= group.configuration) {
      throw new XKernelError(
        'INVALID_ARGUMENT',
        `reconfigure: configuration must be an integer above ${group.configuration}, got ${String(configuration)}`,
      )
    }
    const members = next.members
    const seed = next.seed ?? []
    const spec: GroupSpec = {
      port: group.port,
      members,
      options: group.info.options,
      configuration,
    }
    this.validateSpec(spec)
    if (!Array.isArray(seed)) {
      throw new XKernelError(
        'INVALID_ARGUMENT',
        'reconfigure: seed must be a list of storage operations',
      )
    }
    const scope = sessionScope(protocol, group.port, configuration)
    return this.track(group.port, this.move(group, spec, scope, seed, configuration))
  }

  /** Records `reopen` (a move or a restart of `port`) as under way until it settles. */
  track(port: string, reopen: Promise<Group<Prov>>): Promise<Group<Prov>> {
    this.moves.set(port, reopen)
    const done = () => {
      if (this.moves.get(port) === reopen) this.moves.delete(port)
    }
    reopen.then(done, done)
    return reopen
  }

  private async move(
    group: GroupImpl<Prov>,
    spec: GroupSpec,
    scope: string,
    seed: readonly StorageOp[],
    configuration: number,
  ): Promise<Group<Prov>> {
    const members = spec.members
    // One batch: the next configuration exists, with its seed, or (after a crash) not at all.
    this.storage.batch([
      ...seed.map((op) => ({ ...op, key: scope + op.key })),
      {
        type: 'put' as const,
        key: GROUP_KEY_PREFIX + group.port,
        value: groupRecord(group.port, canonicalMembers(members), configuration),
      },
    ])
    await this.storage.sync()
    this.checkRunning()
    await this.closeGroup(group, true)
    const opened = await this.openGroup(spec, false, group.hooks, true)
    this.counters.inc('reconfigured')
    this.events.emit('group.reconfigured', {
      group: spec.port,
      configuration,
      members: opened.members,
    })
    this.log.info('group reconfigured', {
      group: spec.port,
      configuration,
      members: opened.members,
    })
    return opened
  }

  /**
   * Deletes every key a configuration of `port` other than `keep` left in storage, without
   * walking the kept configuration's own keys (a long log): configuration 0's scope, then the
   * `@<c>` scopes below and above `keep`'s.
   */
  private deleteOtherConfigurations(port: string, keep: number): void {
    for (const { factory } of this.protocols) {
      const stem = `${factory.name}/${port}`
      const own = sessionScope(factory.name, port, keep)
      const ranges =
        keep === 0
          ? [{ prefix: `${stem}@` }]
          : [
              { prefix: `${stem}/` },
              { prefix: `${stem}@`, end: own },
              { prefix: `${stem}@`, start: `${own}\uffff` },
            ]
      let ops: StorageOp[] = []
      for (const range of ranges) {
        for (const { key } of this.storage.scan(range)) {
          // `psync/g@1x/…` would be another port's: only `@<digits>/` scopes are ours.
          if (!/^(\/|@[0-9]+\/)/.test(key.slice(stem.length)) || key.startsWith(own)) continue
          ops.push({ type: 'del', key })
          if (ops.length >= CLEANUP_BATCH) {
            this.storage.batch(ops)
            ops = []
          }
        }
      }
      if (ops.length > 0) this.storage.batch(ops)
    }
  }

  /** `Group.restart`: the group's sessions again from storage (its record kept). */
  async reopenGroup(spec: GroupSpec, hooks?: OpenHooks<Prov>): Promise<Group<Prov>> {
    this.checkRunning()
    return this.openGroup(spec, true, hooks)
  }

  async recoverGroups(
    optionsFor?: (port: string) => Readonly<Record<string, unknown>> | undefined,
    hooks?: OpenHooks<Prov>,
  ): Promise<Group<Prov>[]> {
    this.checkRunning()
    const groups: Group<Prov>[] = []
    const failures: string[] = []
    let firstError: unknown
    // One group that fails to recover must not keep the others down.
    for (const spec of this.storedGroups()) {
      if (this.byPort.has(spec.port)) continue
      const options = optionsFor?.(spec.port)
      try {
        groups.push(
          await this.openGroup(options === undefined ? spec : { ...spec, options }, true, hooks),
        )
      } catch (error) {
        this.counters.inc('groupRecoveryFailures')
        this.log.error('group recovery failed', { group: spec.port, error: String(error) })
        failures.push(`${spec.port}: ${error instanceof Error ? error.message : String(error)}`)
        firstError ??= error
      }
    }
    if (failures.length > 0) {
      throw new XKernelError(
        'RECOVERY_FAILED',
        `could not recover ${failures.length} group(s) (the others are open): ${failures.join('; ')}`,
        { cause: firstError },
      )
    }
    return groups
  }

  /**
   * Closes a group's sessions, top first. A graceful stop keeps the group's record so a
   * restarted host recovers it; an explicit close forgets it.
   */
  async closeGroup(group: GroupImpl<Prov>, keepRecord = false): Promise<void> {
    if (!group.open || this.byPort.get(group.port) !== group) return
    this.byPort.delete(group.port)
    this.byTag.delete(group.tag)
    this.releaseLobbyTag(group.port)
    for (const entry of [...group.sessions].reverse()) {
      try {
        await entry.session.close?.()
      } catch (error) {
        this.log.error('session close threw', {
          group: group.port,
          protocol: entry.protocol,
          error: String(error),
        })
      }
    }
    group.drop()
    if (!keepRecord) this.storage.delete(GROUP_KEY_PREFIX + group.port)
    this.events.emit('group.closed', { group: group.port })
  }

  describe(): HostDescription {
    const providerOf = new Map<string, string>()
    for (const { factory } of this.protocols) {
      for (const cap of factory.provides) providerOf.set(cap.name, factory.name)
    }
    const edges: { from: string; to: string; capability: string }[] = []
    const eventEdges: { event: string; from: string; to: string }[] = []
    for (const { factory } of this.protocols) {
      for (const cap of factory.requires) {
        edges.push({
          from: factory.name,
          to: providerOf.get(cap.name) ?? '?',
          capability: cap.name,
        })
      }
      for (const event of factory.raises) {
        for (const other of this.protocols) {
          if (other.factory.observes.includes(event)) {
            eventEdges.push({ event, from: factory.name, to: other.factory.name })
          }
        }
      }
    }
    return {
      self: this.self,
      state: this.state,
      protocols: this.protocols.map(({ factory }) => ({
        name: factory.name,
        requires: factory.requires.map((c) => c.name),
        provides: factory.provides.map((c) => c.name),
        raises: [...factory.raises],
        observes: [...factory.observes],
      })),
      groups: [...this.byPort.values()].map((g) => ({
        port: g.port,
        members: g.members,
        configuration: g.configuration,
      })),
      sessions: [...this.byPort.values()].flatMap((g) =>
        g.sessions.map((s) => ({
          group: g.port,
          protocol: s.protocol,
          checkpoint: s.session.checkpoint !== undefined,
          restored: g.restored.includes(s.protocol),
        })),
      ),
      edges,
      eventEdges,
    }
  }

  stats(): HostStats {
    const out: HostStats = {}
    this.counters.set('eventHandlerErrors', this.events.handlerErrors)
    this.counters.set('openGroups', this.byPort.size)
    this.counters.set('pendingTimers', this.hostClock.pending)
    out.xkernel = this.counters.snapshot()
    out.transport = this.transport.stats()
    for (const { factory, instance, counters } of this.protocols) {
      out[factory.name] = { ...counters.snapshot(), ...(instance.stats?.() ?? {}) }
    }
    return out
  }

  crash(): void {
    if (this.state !== 'running') return
    this.state = 'crashed'
    for (const group of this.byPort.values()) group.drop()
    this.byPort.clear()
    this.byTag.clear()
    this.lobbyPorts.clear()
    this.hostLobbies.clear()
    this.hostClock.close()
    this.events.clear()
    this.transport.onReceive(() => {})
  }

  async stop(): Promise<void> {
    if (this.state !== 'running') return
    for (const group of [...this.byPort.values()]) await this.closeGroup(group, true)
    this.state = 'stopped'
    this.hostClock.close()
    this.events.clear()
    await this.storage.sync()
    await this.transport.close()
    await this.storage.close()
  }
}

export function startHost<Prov extends CapabilityMap>(
  factories: readonly AnyProtocolFactory[],
  services: HostServices,
): Host<Prov> {
  return new HostImpl<Prov>(factories, services)
}

function groupRecord(port: string, members: readonly NodeId[], configuration: number): Uint8Array {
  return encoder.encode(
    JSON.stringify(configuration === 0 ? { port, members } : { port, members, configuration }),
  )
}

/** A group record (`{ port, members, configuration? }` as JSON), or `undefined`. */
function parseGroupRecord(value: Uint8Array): GroupSpec | undefined {
  try {
    const parsed = JSON.parse(decoder.decode(value)) as {
      port?: unknown
      members?: unknown
      configuration?: unknown
    }
    if (
      typeof parsed === 'object' &&
      parsed !== null &&
      typeof parsed.port === 'string' &&
      Array.isArray(parsed.members)
    ) {
      const c = parsed.configuration
      if (c === undefined) return { port: parsed.port, members: parsed.members as NodeId[] }
      if (!Number.isSafeInteger(c) || (c as number) < 0) return undefined
      return { port: parsed.port, members: parsed.members as NodeId[], configuration: c as number }
    }
  } catch {
    // not JSON
  }
  return undefined
}
