/**
 * The datagram envelope: a fixed 12-byte header, a body, and the integrity trailer.
 *
 * ```
 * offset  bytes  field
 *      0      2  magic 0xC5 0x7A
 *      2      1  version (1)
 *      3      1  flags: bit 0 authenticated (HMAC trailer, else CRC32C), bit 1 fragment
 *                (else bundle); other bits 0
 *      4      4  group id, u32 big-endian
 *      8      4  sender id, u32 big-endian (hash of the sender's member id)
 *     12      …  body (a bundle or a fragment)
 *   end-T     T  trailer: 16-byte HMAC-SHA-256 prefix or 4-byte CRC32C, over bytes [0, end-T)
 * ```
 *
 * Rule: `parseHeader` checks everything that does not need the sender's identity (size,
 * magic, version, flags, integrity mode, group) and reports the first failure as a drop
 * reason; the caller then checks the sender and the trailer. Pure functions: nothing here
 * throws on any input, and nothing allocates except the returned header.
 */
import type { Integrity } from './integrity.js'

export const MAGIC_0 = 0xc5
export const MAGIC_1 = 0x7a
export const VERSION = 1
export const HEADER_BYTES = 12

export const FLAG_AUTHENTICATED = 0x01
export const FLAG_FRAGMENT = 0x02
const KNOWN_FLAGS = FLAG_AUTHENTICATED | FLAG_FRAGMENT

/** The largest UDP payload over IPv4 (65535 − 8 UDP − 20 IP); IPv6 allows 20 more. */
export const MAX_UDP_PAYLOAD = 65_507

/** Why a datagram or an outgoing message was dropped; counted as `drop.<reason>` in `stats()`. */
export type DropReason =
  | 'truncated'
  | 'oversize'
  | 'badMagic'
  | 'badVersion'
  | 'badFlags'
  | 'authMismatch'
  | 'foreignGroup'
  | 'unknownSender'
  | 'ownDatagram'
  | 'addressMismatch'
  | 'badMac'
  | 'badCrc'
  | 'badBundle'
  | 'badFragment'
  | 'duplicateFragment'
  | 'fragmentTooLarge'
  | 'reassemblyTimeout'
  | 'reassemblyEvicted'
  | 'sendQueueFull'
  | 'closed'

export const DROP_REASONS: readonly DropReason[] = [
  'truncated',
  'oversize',
  'badMagic',
  'badVersion',
  'badFlags',
  'authMismatch',
  'foreignGroup',
  'unknownSender',
  'ownDatagram',
  'addressMismatch',
  'badMac',
  'badCrc',
  'badBundle',
  'badFragment',
  'duplicateFragment',
  'fragmentTooLarge',
  'reassemblyTimeout',
  'reassemblyEvicted',
  'sendQueueFull',
  'closed',
]

export interface DatagramHeader {
  readonly flags: number
  readonly groupId: number
  readonly senderId: number
  /** The body is `bytes[HEADER_BYTES, bodyEnd)`. */
  readonly bodyEnd: number
}

export interface EnvelopeContext {
  readonly groupId: number
  readonly integrity: Integrity
  /** Datagrams longer than this are dropped as `oversize`. */
  readonly maxDatagram: number
}

/** Writes the header for a datagram of this group and sender at `bytes[0, 12)`. */
export function writeHeader(
  bytes: Uint8Array,
  flags: number,
  groupId: number,
  senderId: number,
): void {
  bytes[0] = MAGIC_0
  bytes[1] = MAGIC_1
  bytes[2] = VERSION
  bytes[3] = flags
  writeU32(bytes, 4, groupId)
  writeU32(bytes, 8, senderId)
}

export function writeU32(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = value >>> 24
  bytes[at + 1] = (value >>> 16) & 0xff
  bytes[at + 2] = (value >>> 8) & 0xff
  bytes[at + 3] = value & 0xff
}

export function readU32(bytes: Uint8Array, at: number): number {
  return (
    ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) >>> 0
  )
}

/**
 * Checks the envelope of `bytes` except sender and trailer. Returns the header, or the
 * reason to drop the datagram.
 */
export function parseHeader(
  bytes: Uint8Array,
  context: EnvelopeContext,
): DatagramHeader | DropReason {
  if (bytes.length > context.maxDatagram) return 'oversize'
  if (bytes.length < 2) return 'truncated'
  if (bytes[0] !== MAGIC_0 || bytes[1] !== MAGIC_1) return 'badMagic'
  if (bytes.length < HEADER_BYTES) return 'truncated'
  if (bytes[2] !== VERSION) return 'badVersion'
  const flags = bytes[3]!
  if ((flags & ~KNOWN_FLAGS) !== 0) return 'badFlags'
  const { integrity } = context
  if (((flags & FLAG_AUTHENTICATED) !== 0) !== integrity.authenticated) return 'authMismatch'
  const groupId = readU32(bytes, 4)
  if (groupId !== context.groupId) return 'foreignGroup'
  // A body needs at least one byte (a bundle entry takes 2, a fragment 13).
  if (bytes.length < HEADER_BYTES + 1 + integrity.trailerBytes) return 'truncated'
  return {
    flags,
    groupId,
    senderId: readU32(bytes, 8),
    bodyEnd: bytes.length - integrity.trailerBytes,
  }
}

/** Checks the trailer; the drop reason when it is wrong. */
export function checkTrailer(bytes: Uint8Array, integrity: Integrity): DropReason | undefined {
  if (integrity.check(bytes)) return undefined
  return integrity.authenticated ? 'badMac' : 'badCrc'
}
