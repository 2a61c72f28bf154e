/**
 * The options of `udp()`, their defaults, and their validation. Every mistake is reported
 * here, before a socket exists, as a `UdpTransportError` whose message names the option and
 * says what to pass instead.
 */
import type { Clock, Logger, NodeId } from '@consul/xkernel'
import { hashString } from '@consul/xkernel'
import { AEAD_CIPHERS, type AeadCipher } from './adapters/aead.js'
import { MAC_BYTES, MIN_KEY_BYTES } from './adapters/hmac.js'
import { type IpFamily, type IpLiteral, isMulticast, parseIpLiteral } from './address.js'
import { HEADER_BYTES, MAX_U48, MAX_UDP_PAYLOAD } from './codec.js'
import { UdpTransportError } from './errors.js'
import { FRAGMENT_HEADER_BYTES } from './fragments.js'
import type { GroupKey } from './integrity.js'
import type { ReassemblyLimits } from './reassembly.js'

/** Where a member listens. `host` is an IP address literal, not a name. */
export interface PeerAddress {
  readonly host: string
  readonly port: number
}

export interface MulticastOptions {
  /** The IP multicast group address, e.g. `'239.255.0.1'` or `'ff02::1:1'`. */
  readonly group: string
  /** The UDP port every member of the group receives multicast datagrams on. */
  readonly port: number
  /**
   * The local interface address to send on and join the group on (default: the OS picks;
   * use `'127.0.0.1'` for loopback-only tests).
   */
  readonly interface?: string
  /** Multicast time-to-live (hops); default 1 (the local network only). */
  readonly ttl?: number
}

export interface UdpOptions {
  /** This member's id; must not be empty. */
  readonly self: NodeId
  /**
   * Every member's address by id. May contain `self` (so all members can share one map; the
   * entry is then ignored); every other entry is a peer.
   */
  readonly peers: Readonly<Record<NodeId, PeerAddress>>
  /** The local UDP port to bind; 0 lets the OS choose (read it back with `address()`). */
  readonly port: number
  /** The local IP address to bind (`'127.0.0.1'`, `'::1'`, `'0.0.0.0'`, `'::'` …). */
  readonly host: string
  /**
   * The group key (at least 16 bytes). Set, every datagram carries a truncated HMAC-SHA-256
   * and only key holders can inject; unset, a CRC32C guards against corruption only.
   */
  readonly key?: Uint8Array
  /**
   * A keyring instead of `key`: keys by u8 id, for rotation without downtime. A member sends
   * to each peer with the newest id both hold and accepts every id in its ring; see the
   * README's "Key rotation". `key` alone is the ring `[{ id: 0, key }]`.
   */
  readonly keys?: readonly GroupKey[]
  /**
   * Encrypt every datagram (AEAD: `cipher`, default AES-256-GCM) instead of the HMAC. Needs
   * `key` or `keys`; every member of the group must agree.
   */
  readonly encrypt?: boolean
  /** The AEAD cipher with `encrypt`: `'aes-256-gcm'` (default) or `'chacha20-poly1305'`. */
  readonly cipher?: AeadCipher
  /**
   * This incarnation's epoch (an integer 1 … 2^48 − 1), from the application's stable
   * storage: it must be greater than the epoch of every earlier start of this member (peers
   * refuse a lower one, and AEAD nonces must never repeat). Default: from `epochFile` if
   * set, else the wall clock in milliseconds (see the README's "Epochs").
   */
  readonly epoch?: number
  /** A file this member keeps its last epoch in (read, increased, synced before binding). */
  readonly epochFile?: string
  /**
   * How many datagrams behind a sender's newest one may still arrive (reordered) and be
   * accepted: a power of two, 64 … 65,536. Default 2048. `0` turns replay protection off
   * (only for measurements: replays are then delivered again).
   */
  readonly replayWindow?: number
  /** The largest datagram (UDP payload, all headers and trailer included). Default 1400. */
  readonly maxDatagram?: number
  /**
   * How long small messages may wait to be bundled: 0 (default) sends at the end of the
   * current event-loop turn; more than 0 waits up to that many milliseconds (a full
   * datagram always goes at once).
   */
  readonly bundleMs?: number
  /**
   * The group id in every header: a u32 as is, or a string hashed to one (32-bit FNV-1a).
   * Datagrams of another group are dropped. Default 0.
   */
  readonly groupId?: string | number
  /** Send `broadcast` as one IP multicast datagram to this group instead of one per peer. */
  readonly multicast?: MulticastOptions
  /** Where dropped datagrams and failed sends are logged (debug) and socket errors (warn). */
  readonly logger?: Logger
  /**
   * The most datagrams that may wait to be written or be open for bundling; a message that
   * finds no room is dropped (`drop.sendQueueFull`). Default 4096.
   */
  readonly maxSendQueue?: number
  /** Bounds on partially received fragmented messages. */
  readonly reassembly?: Partial<ReassemblyLimits>
  /** Kernel socket buffer size to ask for (best effort, capped by the OS). Default 4 MiB. */
  readonly socketBufferBytes?: number
  /** The clock for `bundleMs` and reassembly timeouts. Default `realClock()`. */
  readonly clock?: Clock
}

export const DEFAULT_MAX_DATAGRAM = 1400
export const DEFAULT_MAX_SEND_QUEUE = 4096
export const DEFAULT_REASSEMBLY_TIMEOUT_MS = 5_000
export const DEFAULT_REASSEMBLY_MAX_BYTES = 16 * 1024 * 1024
export const DEFAULT_SOCKET_BUFFER_BYTES = 4 * 1024 * 1024
export const DEFAULT_REPLAY_WINDOW = 2048
/** The smallest `maxDatagram`: header, fragment header, MAC and a useful chunk. */
export const MIN_MAX_DATAGRAM = HEADER_BYTES + FRAGMENT_HEADER_BYTES + MAC_BYTES + 24

export interface ResolvedPeer {
  readonly id: NodeId
  readonly address: string
  readonly port: number
}

export interface ResolvedMulticast {
  readonly group: string
  readonly port: number
  readonly interface: string | undefined
  readonly ttl: number
}

export interface ResolvedOptions {
  readonly self: NodeId
  readonly peers: readonly ResolvedPeer[]
  readonly host: string
  readonly family: IpFamily
  readonly port: number
  /** The keyring (ascending ids), or `undefined` for CRC32C. */
  readonly keys: readonly GroupKey[] | undefined
  /** The AEAD cipher, or `false` for the HMAC (or CRC32C without keys). */
  readonly encrypt: false | AeadCipher
  readonly epoch: number | undefined
  readonly epochFile: string | undefined
  readonly replayWindow: number
  readonly groupId: number
  readonly maxDatagram: number
  readonly bundleMs: number
  readonly maxSendQueue: number
  readonly reassembly: ReassemblyLimits
  readonly socketBufferBytes: number
  readonly multicast: ResolvedMulticast | undefined
}

function invalid(message: string): UdpTransportError {
  return new UdpTransportError('INVALID_OPTIONS', message)
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function checkInteger(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalid(`${name} must be an integer in ${min}..${max}, got ${String(value)}`)
  }
  return value
}

function checkPositive(name: string, value: unknown, allowZero: boolean): number {
  if (
    typeof value !== 'number' ||
    !Number.isFinite(value) ||
    value < 0 ||
    (!allowZero && value === 0)
  ) {
    const range = allowZero ? 'a finite number >= 0' : 'a finite number > 0'
    throw invalid(`${name} must be ${range}, got ${String(value)}`)
  }
  return value
}

function checkIp(name: string, value: unknown): IpLiteral {
  const ip = typeof value === 'string' ? parseIpLiteral(value) : undefined
  if (ip === undefined) {
    throw invalid(
      `${name} must be an IP address literal such as '127.0.0.1' or '::1', got ${JSON.stringify(value)}; resolve host names before calling udp()`,
    )
  }
  return ip
}

/** The u32 group id of a `groupId` option. */
export function groupIdOf(groupId: string | number | undefined): number {
  if (groupId === undefined) return 0
  if (typeof groupId === 'string') {
    if (groupId.length === 0) throw invalid('groupId must be a non-empty string or a u32')
    return hashString(groupId)
  }
  return checkInteger('groupId', groupId, 0, 0xffff_ffff)
}

/** The u32 a member id travels as in the header's sender field (32-bit FNV-1a). */
export function senderIdOf(id: NodeId): number {
  return hashString(id)
}

function checkKey(name: string, key: unknown): void {
  if (!(key instanceof Uint8Array) || key.length < MIN_KEY_BYTES) {
    throw new UdpTransportError(
      'INVALID_KEY',
      `${name} must be a Uint8Array of at least ${MIN_KEY_BYTES} bytes (32 random bytes are best, e.g. crypto.randomBytes(32)); got ${key instanceof Uint8Array ? `${key.length} bytes` : typeof key}`,
    )
  }
}

/**
 * Validates a keyring (for `keys` and `setKeys`): 1 to 255 entries, ids distinct integers in
 * 0 … 255, keys of at least 16 bytes. Returns copies, by ascending id.
 */
export function checkKeys(keys: unknown): readonly GroupKey[] {
  if (!Array.isArray(keys) || keys.length === 0) {
    throw new UdpTransportError(
      'INVALID_KEY',
      'keys must be a non-empty array of { id, key } (id 0..255)',
    )
  }
  const seen = new Set<number>()
  const out: GroupKey[] = []
  keys.forEach((entry: unknown, i) => {
    if (!isPlainObject(entry))
      throw new UdpTransportError('INVALID_KEY', `keys[${i}] must be { id, key }`)
    const { id } = entry
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id > 255) {
      throw new UdpTransportError(
        'INVALID_KEY',
        `keys[${i}].id must be an integer in 0..255, got ${String(id)}`,
      )
    }
    if (seen.has(id)) throw new UdpTransportError('INVALID_KEY', `keys has id ${id} twice`)
    seen.add(id)
    checkKey(`keys[${i}].key`, entry.key)
    out.push({ id, key: Uint8Array.from(entry.key as Uint8Array) })
  })
  return Object.freeze(out.sort((a, b) => a.id - b.id))
}

export function resolveOptions(options: UdpOptions): ResolvedOptions {
  if (!isPlainObject(options)) throw invalid('udp() needs an options object')
  const { self } = options
  if (typeof self !== 'string' || self.length === 0) {
    throw invalid(`self must be a non-empty member id, got ${JSON.stringify(self)}`)
  }
  const local = checkIp('host', options.host)
  const port = checkInteger('port', options.port, 0, 65_535)

  if (!isPlainObject(options.peers)) {
    throw invalid('peers must be an object mapping member ids to { host, port }')
  }
  const peers: ResolvedPeer[] = []
  const senders = new Map<number, NodeId>([[senderIdOf(self), self]])
  const addresses = new Map<string, NodeId>()
  for (const [id, entry] of Object.entries(options.peers)) {
    if (id === self) continue
    if (id.length === 0) throw invalid('peers has an empty member id')
    if (!isPlainObject(entry)) throw invalid(`peers.${id} must be { host, port }`)
    const ip = checkIp(`peers.${id}.host`, entry.host)
    if (ip.family !== local.family) {
      throw invalid(
        `peers.${id}.host is IPv${ip.family} but host ${options.host} is IPv${local.family}; bind an address of the same family as the peers`,
      )
    }
    const peerPort = checkInteger(`peers.${id}.port`, entry.port, 1, 65_535)
    const where = `${ip.address}:${peerPort}`
    const clash = addresses.get(where)
    if (clash !== undefined) {
      throw invalid(`peers.${id} and peers.${clash} have the same address ${where}`)
    }
    addresses.set(where, id)
    const sender = senderIdOf(id)
    const other = senders.get(sender)
    if (other !== undefined) {
      throw new UdpTransportError(
        'ID_COLLISION',
        `member ids ${JSON.stringify(other)} and ${JSON.stringify(id)} hash to the same 32-bit sender id; rename one of them`,
      )
    }
    senders.set(sender, id)
    peers.push({ id, address: ip.address, port: peerPort })
  }

  const { key } = options
  if (key !== undefined && options.keys !== undefined) {
    throw invalid('pass key or keys, not both (key is the keyring [{ id: 0, key }])')
  }
  if (key !== undefined) checkKey('key', key)
  const keys =
    options.keys !== undefined
      ? checkKeys(options.keys)
      : key === undefined
        ? undefined
        : [{ id: 0, key: Uint8Array.from(key) }]
  if (options.encrypt !== undefined && typeof options.encrypt !== 'boolean') {
    throw invalid(`encrypt must be true or false, got ${String(options.encrypt)}`)
  }
  const cipher = options.cipher ?? 'aes-256-gcm'
  if (!AEAD_CIPHERS.includes(cipher)) {
    throw invalid(`cipher must be one of ${AEAD_CIPHERS.join(', ')}, got ${String(cipher)}`)
  }
  if (options.cipher !== undefined && options.encrypt !== true) {
    throw invalid('cipher needs encrypt: true')
  }
  if (options.encrypt === true && keys === undefined) {
    throw new UdpTransportError(
      'INVALID_KEY',
      'encrypt: true needs a key (key or keys): encryption without a shared key protects nothing',
    )
  }
  if (options.epoch !== undefined && options.epochFile !== undefined) {
    throw invalid('pass epoch or epochFile, not both')
  }
  const epoch =
    options.epoch === undefined ? undefined : checkInteger('epoch', options.epoch, 1, MAX_U48)
  if (
    options.epochFile !== undefined &&
    (typeof options.epochFile !== 'string' || options.epochFile.length === 0)
  ) {
    throw invalid('epochFile must be a non-empty path')
  }
  const replayWindow = options.replayWindow ?? DEFAULT_REPLAY_WINDOW
  if (
    replayWindow !== 0 &&
    (checkInteger('replayWindow', replayWindow, 64, 65_536) & (replayWindow - 1)) !== 0
  ) {
    throw invalid(`replayWindow must be 0 or a power of two in 64..65536, got ${replayWindow}`)
  }

  const maxDatagram = checkInteger(
    'maxDatagram',
    options.maxDatagram ?? DEFAULT_MAX_DATAGRAM,
    MIN_MAX_DATAGRAM,
    MAX_UDP_PAYLOAD,
  )
  const bundleMs = checkPositive('bundleMs', options.bundleMs ?? 0, true)
  const maxSendQueue = checkInteger(
    'maxSendQueue',
    options.maxSendQueue ?? DEFAULT_MAX_SEND_QUEUE,
    1,
    1_000_000,
  )
  const reassemblyOption = options.reassembly ?? {}
  if (!isPlainObject(reassemblyOption)) throw invalid('reassembly must be { timeoutMs, maxBytes }')
  const reassembly: ReassemblyLimits = {
    timeoutMs: checkPositive(
      'reassembly.timeoutMs',
      reassemblyOption.timeoutMs ?? DEFAULT_REASSEMBLY_TIMEOUT_MS,
      false,
    ),
    maxBytes: checkInteger(
      'reassembly.maxBytes',
      reassemblyOption.maxBytes ?? DEFAULT_REASSEMBLY_MAX_BYTES,
      1,
      2 ** 32,
    ),
  }
  const socketBufferBytes = checkInteger(
    'socketBufferBytes',
    options.socketBufferBytes ?? DEFAULT_SOCKET_BUFFER_BYTES,
    1024,
    2 ** 31 - 1,
  )

  let multicast: ResolvedMulticast | undefined
  if (options.multicast !== undefined) {
    const m = options.multicast
    if (!isPlainObject(m)) throw invalid('multicast must be { group, port, interface?, ttl? }')
    const group = checkIp('multicast.group', m.group)
    if (!isMulticast(group)) {
      throw invalid(
        `multicast.group must be a multicast address (224.0.0.0/4 or ff00::/8), got ${m.group}`,
      )
    }
    if (group.family !== local.family) {
      throw invalid(`multicast.group must be IPv${local.family} like host ${options.host}`)
    }
    const iface =
      m.interface === undefined ? undefined : checkIp('multicast.interface', m.interface)
    multicast = {
      group: group.address,
      port: checkInteger('multicast.port', m.port, 1, 65_535),
      interface: iface?.address,
      ttl: checkInteger('multicast.ttl', m.ttl ?? 1, 0, 255),
    }
  }

  return {
    self,
    peers,
    host: local.address,
    family: local.family,
    port,
    keys,
    encrypt: options.encrypt === true ? cipher : false,
    epoch,
    epochFile: options.epochFile,
    replayWindow,
    groupId: groupIdOf(options.groupId),
    maxDatagram,
    bundleMs,
    maxSendQueue,
    reassembly,
    socketBufferBytes,
    multicast,
  }
}
