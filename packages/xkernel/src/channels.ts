/**
 * Divider channels: the first byte of every Psync payload names the channel it travels on,
 * so the Divider can hand each incoming message to the protocols that subscribed to it. The
 * paper's two message types become channels of two kinds: `operation` — application
 * commands (the Orders' `ORDER_CHANNEL`) — and `monitoring` — one channel per protocol for
 * its own messages (Failure Detection, Membership, Recovery …). An empty payload has no
 * channel: it is a bare acknowledgement.
 *
 * Channels are registered here, once per process (per copy of `@consul/xkernel`), so two packages can never pick the same
 * byte unknowingly: `defineChannel` throws `XKernelError('CHANNEL_CLASH')` when the id is
 * taken by another name or the name by another id. Registering the same name and id again
 * (a second copy of a package, a test re-import) returns the same channel.
 *
 * ```ts
 * export const MEMBERSHIP_CHANNEL = defineChannel('membership', 0x4d, 'monitoring')
 * ```
 */
import { XKernelError } from './errors.js'

export type ChannelKind = 'operation' | 'monitoring'

export interface Channel {
  readonly name: string
  /** The payload's first byte. */
  readonly id: number
  readonly kind: ChannelKind
}

// One registry per copy of this package (a process with two copies checks each apart).
const registry = new Map<number, Channel>()

/**
 * Registers (or returns the registered) channel `name` with first byte `id`. Throws
 * `XKernelError('INVALID_ARGUMENT')` for a name that is not a non-empty string, an id outside
 * 0–255 or an unknown kind; `XKernelError('CHANNEL_CLASH')` naming both owners when the id or
 * the name is taken by another channel.
 */
export function defineChannel(name: string, id: number, kind: ChannelKind): Channel {
  if (typeof name !== 'string' || name.length === 0)
    throw new XKernelError('INVALID_ARGUMENT', 'a channel needs a non-empty name')
  if (!Number.isInteger(id) || id < 0 || id > 255)
    throw new XKernelError(
      'INVALID_ARGUMENT',
      `channel ${name}: id must be a byte (0–255), got ${id}`,
    )
  if (kind !== 'operation' && kind !== 'monitoring')
    throw new XKernelError(
      'INVALID_ARGUMENT',
      `channel ${name}: kind must be 'operation' or 'monitoring', got ${String(kind)}`,
    )
  const taken = registry.get(id)
  if (taken !== undefined) {
    if (taken.name === name && taken.kind === kind) return taken
    throw new XKernelError(
      'CHANNEL_CLASH',
      `channel id 0x${id.toString(16)} is taken by '${taken.name}' (${taken.kind}); '${name}' needs another byte (see channels() for the ones in use)`,
    )
  }
  for (const c of registry.values()) {
    if (c.name === name)
      throw new XKernelError(
        'CHANNEL_CLASH',
        `channel '${name}' is registered with id 0x${c.id.toString(16)}, not 0x${id.toString(16)}`,
      )
  }
  const channel = Object.freeze({ name, id, kind })
  registry.set(id, channel)
  return channel
}

/** The channel whose first byte is `id`, if registered. */
export function channelOf(id: number): Channel | undefined {
  return registry.get(id)
}

/** Every registered channel, by id. */
export function channels(): readonly Channel[] {
  return [...registry.values()].sort((a, b) => a.id - b.id)
}

/** Application commands: what the Orders carry (`ORDER_CHANNEL`'s byte, "O"). */
export const OPERATIONS = defineChannel('operations', 0x4f, 'operation')
/** Failure Detection's alive messages ("F"). */
export const FAILURE_DETECTION_CHANNEL = defineChannel('failure-detection', 0x46, 'monitoring')
/** Membership's proposals and decisions ("M"). */
export const MEMBERSHIP_CHANNEL = defineChannel('membership', 0x4d, 'monitoring')
/** Recovery's up / checkpoint / state-transfer messages ("R"). */
export const RECOVERY_CHANNEL = defineChannel('recovery', 0x52, 'monitoring')
