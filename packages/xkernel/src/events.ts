/**
 * The typed event bus: how a protocol tells others about things that are not calls (the
 * paper's *indirect dependencies*: "recovery started, lengthen your timeouts"). Packages
 * add events by declaration merging:
 *
 * ```ts
 * declare module '@consul/xkernel' {
 *   interface ConsulEvents {
 *     'psync.retransmitting': { group: string; peer: NodeId }
 *   }
 * }
 * ```
 *
 * Handlers run synchronously, in registration order. A handler that throws does not stop
 * the others: the error is logged and counted (`xkernel.eventHandlerErrors`).
 */
import type { NodeId } from './transport.js'

/** What a message looks like to the simulator's recorder. */
export interface TraceMessage {
  readonly group: string
  /** A globally unique id of the message (e.g. `a:17`). */
  readonly id: string
  /** Optional digest of the content, so checkers can tell creation or corruption. */
  readonly digest?: string
  /** The layer that raised it (`psync`, `order` …), when several layers trace one group. */
  readonly layer?: string
  /** Direct causal predecessors, for causal-order checkers. */
  readonly deps?: readonly string[]
  /** Depth (wave number) in a context graph. */
  readonly depth?: number
}

/**
 * Trace records a protocol adds to what the simulator records, kind → data. A package adds
 * its own by declaration merging, raises them with the `trace.record` event, and ships
 * checkers that read them back (`history.declared(kind)` in `@consul/sim`) — without editing
 * the simulator:
 *
 * ```ts
 * declare module '@consul/xkernel' {
 *   interface TraceRecords {
 *     'divider.routed': { readonly id: string; readonly to: readonly string[] }
 *   }
 * }
 * ctx.events.emit('trace.record', { kind: 'divider.routed', group, layer: 'divider', data })
 * ```
 *
 * Kinds are namespaced by package (`divider.…`, `membership.…`); data must be plain JSON
 * (the simulator hashes and exports it).
 */
// biome-ignore lint/suspicious/noEmptyInterface: filled by declaration merging
export interface TraceRecords {}

/** One `trace.record` event: a declared kind with its data. */
export type TraceRecord = {
  [K in keyof TraceRecords]: {
    readonly kind: K
    readonly group: string
    readonly layer: string
    readonly data: TraceRecords[K]
  }
}[keyof TraceRecords]

/**
 * Every event on the bus, name → payload. Extend it by declaration merging. The `trace.*`
 * events are the recording hooks `@consul/sim` listens to; protocols raise them at the
 * points its invariant checkers care about.
 */
export interface ConsulEvents {
  'group.opened': { readonly group: string; readonly members: readonly NodeId[] }
  'group.closed': { readonly group: string }
  /** The group moved into a new configuration (members joined): `host.group(port)` is it. */
  'group.reconfigured': {
    readonly group: string
    readonly configuration: number
    readonly members: readonly NodeId[]
  }
  /** An application-level message was sent (multicast) by this host. */
  'trace.sent': TraceMessage
  /** A message was delivered to the layer the checkers observe. */
  'trace.delivered': TraceMessage & { readonly from: NodeId }
  /** A command the application submitted was acknowledged to it (durable, ordered, …). */
  'trace.acknowledged': TraceMessage
  /** A record of a kind some package declared in `TraceRecords` (see there). */
  'trace.record': TraceRecord
  /** This host learned that a message is stable (every member has it in its past). */
  'trace.stable': TraceMessage
  /** This host saw a wave complete, with exactly these message ids. */
  'trace.wave': {
    readonly group: string
    readonly layer?: string
    readonly wave: number
    readonly ids: readonly string[]
  }
  /**
   * Psync is re-sending to, or asking again from, `peer`: the link or the peer is slow, so
   * failure detection should give it longer before suspecting it.
   */
  'psync.retransmitting': {
    readonly group: string
    readonly peer: NodeId
    readonly direction: 'to' | 'from'
    readonly count: number
  }
  /**
   * Recovery began bringing `member` back (state transfer, replay): it may be slow to speak,
   * so Failure Detection gives it longer. Raised by Recovery; observed by Failure Detection.
   */
  'recovery.started': { readonly group: string; readonly member: NodeId }
  /** Recovery of `member` ended (successfully or not). */
  'recovery.finished': { readonly group: string; readonly member: NodeId }
  /**
   * Membership is deciding about `member` (a down or up round is open), or (`open: false`) no
   * longer: Failure Detection lengthens its timeouts meanwhile, so one decision does not
   * trigger the next.
   */
  'membership.deciding': { readonly group: string; readonly member: NodeId; readonly open: boolean }
  /**
   * This replica's primary state changed (`@consul/membership`): `minority` or `excluded` —
   * it may not order (an Order refuses new submits with `OrderError('NO_PRIMARY')`; on
   * `excluded` it also rejects those still pending: their outcome is unknown here) — or
   * `primary` again. Raised by Membership; observed by the Orders.
   */
  'membership.primary': {
    readonly group: string
    readonly state: 'primary' | 'minority' | 'leaving' | 'excluded'
    readonly view: number
  }
  /**
   * The Dispatcher dropped a delivered command it could not apply here — `unknown-tag` (the
   * machine has no such command: another replica runs another version) or `malformed` (not a
   * Dispatcher command) — the same at every replica running the same machine. Raised by
   * `@consul/dispatcher`.
   */
  'dispatcher.dropped': {
    readonly group: string
    readonly id: string
    readonly reason: 'unknown-tag' | 'malformed'
  }
  /**
   * This host installed a view of the group (Membership), or — layer `psync` — changed the
   * agreed list Psync counts for stability and waves (mask, unmask, exclusion).
   */
  'trace.view': {
    readonly group: string
    readonly view: readonly NodeId[]
    readonly id: number
    readonly layer?: string
  }
}

export type EventName = keyof ConsulEvents
export type EventHandler<K extends EventName> = (payload: ConsulEvents[K]) => void

interface Registration {
  readonly handler: (payload: never) => void
  readonly owner: string
}

export class EventBus {
  private readonly handlers = new Map<EventName, Registration[]>()
  /** Errors thrown by handlers, for `host.stats()`. */
  handlerErrors = 0

  constructor(
    private readonly onHandlerError: (
      event: EventName,
      owner: string,
      error: unknown,
    ) => void = () => {},
  ) {}

  /** Registers `handler`; returns a function that removes it. */
  on<K extends EventName>(name: K, handler: EventHandler<K>, owner = 'app'): () => void {
    if (typeof handler !== 'function')
      throw new TypeError(`handler for ${String(name)} must be a function`)
    const list = this.handlers.get(name) ?? []
    const registration: Registration = { handler: handler as (payload: never) => void, owner }
    // Copy on write: emitting iterates a stable array even if a handler unsubscribes.
    this.handlers.set(name, [...list, registration])
    return () => {
      const current = this.handlers.get(name)
      if (current === undefined) return
      const next = current.filter((r) => r !== registration)
      if (next.length === 0) this.handlers.delete(name)
      else this.handlers.set(name, next)
    }
  }

  /** Runs every handler of `name`, in registration order. */
  emit<K extends EventName>(name: K, payload: ConsulEvents[K]): void {
    const list = this.handlers.get(name)
    if (list === undefined) return
    for (const { handler, owner } of list) {
      try {
        ;(handler as EventHandler<K>)(payload)
      } catch (error) {
        this.handlerErrors++
        this.onHandlerError(name, owner, error)
      }
    }
  }

  /** Whether anyone listens (lets a raiser skip building a payload). */
  has(name: EventName): boolean {
    return this.handlers.has(name)
  }

  /** Drops every handler (host crash). */
  clear(): void {
    this.handlers.clear()
  }
}
