/**
 * `joinGroup`: what a new member runs to come into a running group (see `join.ts` for the
 * protocol).
 */
import {
  type CapabilityMap,
  DecodeError,
  type Group,
  type Host,
  type NodeId,
  type OpenHooks,
  type Timer,
  untilActive,
  XKernelError,
} from '@consul/xkernel'
import { decodeLobby, encodeJoin, REFUSED, WELCOME } from './join-codec.js'

export interface JoinSpec {
  /** The group's port. */
  readonly port: string
  /** Members of the group to ask (any of them; each is asked every `retryMs`). */
  readonly contacts: readonly NodeId[]
  /** Per-group options, as for `host.open` (they are not stored: they may hold functions). */
  readonly options?: Readonly<Record<string, unknown>>
  /** How often the contacts are asked (ms). Default 200. */
  readonly retryMs?: number
  /** How long to wait for a member to take this one in (ms). Default 30,000. */
  readonly timeoutMs?: number
  /** Restarts from a fetched checkpoint allowed (as `recoverReady`'s). Default 3. */
  readonly maxRestarts?: number
}

function invalid(message: string): XKernelError {
  return new XKernelError('INVALID_ARGUMENT', `joinGroup: ${message}`)
}

/**
 * Joins a running group as a new member: asks `contacts` on the group's lobby until one of
 * them has this host in the group's configuration (the members agree on a new configuration
 * that adds it, at a wave every member sees), opens the group there, fetches the state from a
 * member (state transfer), restarts from it and replays, and resolves with the group once it
 * is **active** (`RecoveryControl.ready()`). The open hooks run at every (re)open, so handlers
 * attached in `beforeStart` stay attached.
 *
 * Every member's transport must have this host among its peers (and this host's transport
 * every member): a member whose transport cannot reach a joiner cannot move with the group.
 * A host that already has the group in storage (it joined before and crashed) recovers it
 * instead of asking again.
 *
 * Rejects with `INVALID_ARGUMENT` for bad arguments (no contacts, a contact that is this host
 * or not a peer of the transport, bad numbers) and when the group is already open here,
 * `RECOVERY_FAILED` when a member refuses (the group's Order cannot take joins) or none
 * answers within `timeoutMs`, and with what `ready()` rejects with otherwise.
 */
export async function joinGroup<P extends CapabilityMap>(
  host: Host<P>,
  spec: JoinSpec,
  hooks?: OpenHooks<P>,
): Promise<Group<P>> {
  if (spec === null || typeof spec !== 'object') throw invalid('takes { port, contacts }')
  const { port } = spec
  const retryMs = spec.retryMs ?? 200
  const timeoutMs = spec.timeoutMs ?? 30_000
  const maxRestarts = spec.maxRestarts ?? 3
  if (!Array.isArray(spec.contacts) || spec.contacts.length === 0)
    throw invalid('contacts must be a non-empty list of members to ask')
  for (const contact of spec.contacts)
    if (typeof contact !== 'string' || contact === host.self)
      throw invalid(`bad contact ${JSON.stringify(contact)} (a member of the group, not this host)`)
  for (const [name, value, min] of [
    ['retryMs', retryMs, 1],
    ['timeoutMs', timeoutMs, 1],
    ['maxRestarts', maxRestarts, 0],
  ] as const)
    if (typeof value !== 'number' || !Number.isFinite(value) || value < min)
      throw invalid(`${name} must be a number >= ${min}, got ${String(value)}`)
  if (host.group(port) !== undefined) throw invalid(`group ${port} is already open on ${host.self}`)

  let group: Group<P>
  if (host.storedGroups().some((g) => g.port === port)) {
    await host.recoverGroups((p) => (p === port ? spec.options : undefined), hooks)
    group = host.group(port)!
  } else {
    const welcome = await askToJoin(host, port, spec.contacts, retryMs, timeoutMs)
    group = await host.open(
      {
        port,
        members: welcome.members,
        configuration: welcome.configuration,
        ...(spec.options === undefined ? {} : { options: spec.options }),
      },
      hooks,
    )
  }
  return untilActive(host, group, maxRestarts)
}

/** Asks `contacts` on the lobby until one answers WELCOME with this host in it. */
function askToJoin<P extends CapabilityMap>(
  host: Host<P>,
  port: string,
  contacts: readonly NodeId[],
  retryMs: number,
  timeoutMs: number,
): Promise<{ configuration: number; members: readonly NodeId[] }> {
  const lobby = host.lobby(port)
  return new Promise((resolve, reject) => {
    let timer: Timer | undefined
    let done = false
    const started = host.clock.now()
    const finish = (
      error: Error | undefined,
      value?: { configuration: number; members: readonly NodeId[] },
    ) => {
      if (done) return
      done = true
      timer?.cancel()
      lobby.close()
      if (error !== undefined) reject(error)
      else resolve(value!)
    }
    lobby.onReceive((from, payload) => {
      let frame: ReturnType<typeof decodeLobby>
      try {
        frame = decodeLobby(payload)
      } catch (error) {
        if (DecodeError.isInstance(error)) return
        throw error
      }
      if (frame?.kind === WELCOME && frame.members.includes(host.self))
        finish(undefined, { configuration: frame.configuration, members: frame.members })
      else if (frame?.kind === REFUSED)
        finish(
          new XKernelError(
            'RECOVERY_FAILED',
            `group ${port}: ${from} refused the join: ${frame.reason}`,
          ),
        )
    })
    const ask = () => {
      if (done) return
      if (host.clock.now() - started >= timeoutMs) {
        finish(
          new XKernelError(
            'RECOVERY_FAILED',
            `group ${port}: no member took ${host.self} in within ${timeoutMs} ms (asked ${contacts.join(', ')})`,
          ),
        )
        return
      }
      for (const contact of contacts) {
        try {
          lobby.send(contact, encodeJoin(undefined))
        } catch (error) {
          finish(error as Error)
          return
        }
      }
      timer = host.clock.setTimer(retryMs, ask)
    }
    ask()
  })
}
