/**
 * The datagram envelope: a fixed 26-byte header, a body, and the integrity trailer.
 *
 * ```
 * offset  bytes  field
 *      0      2  magic 0xC5 0x7A
 *      2      1  version (2)
 *      3      1  flags: bit 0 authenticated (keyed: HMAC or AEAD trailer, else CRC32C),
 *                bit 1 fragment (else bundle), bit 2 encrypted (AEAD; only with bit 0);
 *                other bits 0
 *      4      4  group id, u32 big-endian
 *      8      4  sender id, u32 big-endian (hash of the sender's member id)
 *     12      1  key id: the keyring entry this datagram is sealed with (0 without a key)
 *     13      1  newest key id the sender holds (0 without a key)
 *     14      6  epoch, u48: the sender's incarnation (only grows across its restarts)
 *     20      6  counter, u48: the datagram's number in that incarnation (from 1, +1 each)
 *     26      …  body (a bundle or a fragment; encrypted with AEAD)
 *   end-T     T  trailer: 16-byte HMAC-SHA-256 prefix, 16-byte AEAD tag, or 4-byte CRC32C,
 *                over bytes [0, end-T) (AEAD: the header as associated data, the body as text)
 * ```
 *
 * Rule: `parseHeader` checks everything that does not need the sender's identity (size,
 * magic, version, flags, integrity mode, group) and reports the first failure as a drop
 * reason; the caller then checks the sender, the key id, the replay window and the trailer,
 * in that order (cheapest first). Pure functions: nothing here throws on any input, and
 * nothing allocates except the returned header.
 */
import type { Integrity } from './integrity.js'

export const MAGIC_0 = 0xc5
export const MAGIC_1 = 0x7a
export const VERSION = 2
export const HEADER_BYTES = 26
/** Where the key ids, the epoch and the counter sit; bytes [14, 26) are the AEAD nonce. */
export const KEY_ID_OFFSET = 12
export const NEWEST_KEY_OFFSET = 13
export const EPOCH_OFFSET = 14
export const COUNTER_OFFSET = 20

export const FLAG_AUTHENTICATED = 0x01
export const FLAG_FRAGMENT = 0x02
export const FLAG_ENCRYPTED = 0x04
/** The flag bits of a mode: what a receiver in that mode requires (fragment aside). */
export const MODE_FLAGS = FLAG_AUTHENTICATED | FLAG_ENCRYPTED
const KNOWN_FLAGS = FLAG_AUTHENTICATED | FLAG_FRAGMENT | FLAG_ENCRYPTED

/** Epochs and counters are u48: exact in a JavaScript number, and 8,900 years of ms. */
export const MAX_U48 = 2 ** 48 - 1

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
  | 'unknownKey'
  | 'staleEpoch'
  | 'replayTooOld'
  | 'replayed'
  | 'badMac'
  | 'badCrc'
  | 'badBundle'
  | 'badFragment'
  | 'duplicateFragment'
  | 'fragmentTooLarge'
  | 'reassemblyTimeout'
  | 'reassemblyEvicted'
  | 'sendQueueFull'
  | 'counterExhausted'
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
  'unknownKey',
  'staleEpoch',
  'replayTooOld',
  'replayed',
  'badMac',
  'badCrc',
  'badBundle',
  'badFragment',
  'duplicateFragment',
  'fragmentTooLarge',
  'reassemblyTimeout',
  'reassemblyEvicted',
  'sendQueueFull',
  'counterExhausted',
  'closed',
]

export interface DatagramHeader {
  readonly flags: number
  readonly groupId: number
  readonly senderId: number
  readonly keyId: number
  readonly newestKeyId: number
  readonly epoch: number
  readonly counter: number
  /** The body is `bytes[HEADER_BYTES, bodyEnd)`. */
  readonly bodyEnd: number
}

export interface EnvelopeContext {
  readonly groupId: number
  readonly integrity: Integrity
  /** Datagrams longer than this are dropped as `oversize`. */
  readonly maxDatagram: number
}

/**
 * Writes the fixed part of the header (magic to sender id) at `bytes[0, 12)`; the sealing
 * side writes the rest with `writeSequence` just before the trailer.
 */
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

/** Writes the key ids, epoch and counter at `bytes[12, 26)`. */
export function writeSequence(
  bytes: Uint8Array,
  keyId: number,
  newestKeyId: number,
  epoch: number,
  counter: number,
): void {
  bytes[KEY_ID_OFFSET] = keyId
  bytes[NEWEST_KEY_OFFSET] = newestKeyId
  writeU48(bytes, EPOCH_OFFSET, epoch)
  writeU48(bytes, COUNTER_OFFSET, counter)
}

export function writeU48(bytes: Uint8Array, at: number, value: number): void {
  const high = Math.floor(value / 0x1_0000_0000)
  bytes[at] = (high >>> 8) & 0xff
  bytes[at + 1] = high & 0xff
  writeU32(bytes, at + 2, value >>> 0)
}

export function readU48(bytes: Uint8Array, at: number): number {
  return ((bytes[at]! << 8) | bytes[at + 1]!) * 0x1_0000_0000 + readU32(bytes, at + 2)
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
  if ((flags & MODE_FLAGS) !== integrity.flags) return 'authMismatch'
  const groupId = readU32(bytes, 4)
  if (groupId !== context.groupId) return 'foreignGroup'
  // A body needs at least one byte (a bundle entry takes 2, a fragment 13).
  if (bytes.length < HEADER_BYTES + 1 + integrity.trailerBytes) return 'truncated'
  return {
    flags,
    groupId,
    senderId: readU32(bytes, 8),
    keyId: bytes[KEY_ID_OFFSET]!,
    newestKeyId: bytes[NEWEST_KEY_OFFSET]!,
    epoch: readU48(bytes, EPOCH_OFFSET),
    counter: readU48(bytes, COUNTER_OFFSET),
    bodyEnd: bytes.length - integrity.trailerBytes,
  }
}
