/**
 * The trailer on every datagram, in one of three modes:
 * - `hmac` (a key, `encrypt` off): a 16-byte truncated HMAC-SHA-256 over header and body;
 *   only key holders can produce a datagram the group accepts, but anyone on the path reads it;
 * - `aead` (a key, `encrypt: true`): the body encrypted with AES-256-GCM or
 *   ChaCha20-Poly1305, the header authenticated as associated data, a 16-byte tag;
 * - `crc` (no key): a 4-byte CRC32C against accidental corruption only.
 *
 * Keyed modes hold a keyring: key ids (u8) → keys. The header names the key a datagram is
 * sealed with; a receiver that does not hold that id drops it before any cryptography.
 *
 * Invariant: a receiver uses only its own mode. A keyed receiver never accepts a CRC
 * datagram, and an encrypting one never accepts an HMAC one, whatever the header's flags
 * claim, so stripping the key or the encryption from a datagram is not a way around them.
 */

import {
  AEAD_TAG_BYTES,
  type AeadCipher,
  type AeadKey,
  aeadOpen,
  aeadSeal,
  senderKey,
} from './adapters/aead.js'
import { checkMac, MAC_BYTES, type MacKey, macKey, writeMac } from './adapters/hmac.js'
import {
  EPOCH_OFFSET,
  FLAG_AUTHENTICATED,
  FLAG_ENCRYPTED,
  HEADER_BYTES,
  KEY_ID_OFFSET,
} from './codec.js'
import { crc32c } from './crc32c.js'

export const CRC_BYTES = 4

export type IntegrityMode = 'crc' | 'hmac' | 'aead'

/** One keyring entry: a key and the u8 id datagrams name it by. */
export interface GroupKey {
  readonly id: number
  readonly key: Uint8Array
}

export interface Integrity {
  readonly mode: IntegrityMode
  /** The header's mode bits (`authenticated`, `encrypted`) for this mode. */
  readonly flags: number
  /** HMAC or AEAD (true) or CRC32C (false). */
  readonly authenticated: boolean
  /** Bytes the trailer takes at the end of a datagram. */
  readonly trailerBytes: number
  /** The key ids held, ascending (none in `crc` mode). */
  keyIds(): readonly number[]
  /** Whether a datagram sealed with key `id` can be checked here (`crc`: only id 0). */
  hasKey(id: number): boolean
  /**
   * Seals `data[0, length)` (header complete, its key id held) with the key the header
   * names: writes the trailer at `data[length, length + trailerBytes)`; AEAD also encrypts
   * the body in place. `senderId` is the sealing member's (AEAD keys are per sender).
   */
  seal(data: Uint8Array, length: number, senderId: number): void
  /**
   * Whether the trailer of `data` is right for the key its header names and `senderId`;
   * AEAD also decrypts the body in place, only when it is. Never throws.
   */
  open(data: Uint8Array, senderId: number): boolean
  /** Replaces the keyring (keyed modes; validated by the caller). */
  setKeys(keys: readonly GroupKey[]): void
}

function sortedIds(map: Map<number, unknown>): readonly number[] {
  return Object.freeze([...map.keys()].sort((a, b) => a - b))
}

export function hmacIntegrity(keys: Uint8Array | readonly GroupKey[]): Integrity {
  let ring = new Map<number, MacKey>()
  let ids: readonly number[] = []
  const integrity: Integrity = {
    mode: 'hmac',
    flags: FLAG_AUTHENTICATED,
    authenticated: true,
    trailerBytes: MAC_BYTES,
    keyIds: () => ids,
    hasKey: (id) => ring.has(id),
    seal(data, length) {
      writeMac(ring.get(data[KEY_ID_OFFSET]!)!, data, length)
    },
    open(data) {
      const key = ring.get(data[KEY_ID_OFFSET]!)
      return key !== undefined && checkMac(key, data)
    },
    setKeys(next) {
      ring = new Map(next.map((k) => [k.id, macKey(k.key)]))
      ids = sortedIds(ring)
    },
  }
  integrity.setKeys(keys instanceof Uint8Array ? [{ id: 0, key: keys }] : keys)
  return integrity
}

export function aeadIntegrity(
  keys: Uint8Array | readonly GroupKey[],
  cipher: AeadCipher = 'aes-256-gcm',
): Integrity {
  // Per key id, the raw key and the per-sender keys derived so far. Only configured members'
  // sender ids reach `open` (the transport checks the sender first), so this stays bounded.
  let ring = new Map<number, { raw: Uint8Array; bySender: Map<number, AeadKey> }>()
  let ids: readonly number[] = []
  const keyFor = (id: number, senderId: number): AeadKey | undefined => {
    const entry = ring.get(id)
    if (entry === undefined) return undefined
    let key = entry.bySender.get(senderId)
    if (key === undefined) {
      key = senderKey(entry.raw, cipher, senderId)
      entry.bySender.set(senderId, key)
    }
    return key
  }
  const nonce = (data: Uint8Array) => data.subarray(EPOCH_OFFSET, HEADER_BYTES)
  const integrity: Integrity = {
    mode: 'aead',
    flags: FLAG_AUTHENTICATED | FLAG_ENCRYPTED,
    authenticated: true,
    trailerBytes: AEAD_TAG_BYTES,
    keyIds: () => ids,
    hasKey: (id) => ring.has(id),
    seal(data, length, senderId) {
      const key = keyFor(data[KEY_ID_OFFSET]!, senderId)!
      aeadSeal(cipher, key, nonce(data), data, HEADER_BYTES, length)
    },
    open(data, senderId) {
      if (data.length < HEADER_BYTES + AEAD_TAG_BYTES) return false
      const key = keyFor(data[KEY_ID_OFFSET]!, senderId)
      return key !== undefined && aeadOpen(cipher, key, nonce(data), data, HEADER_BYTES)
    },
    setKeys(next) {
      ring = new Map(next.map((k) => [k.id, { raw: Uint8Array.from(k.key), bySender: new Map() }]))
      ids = sortedIds(ring)
    },
  }
  integrity.setKeys(keys instanceof Uint8Array ? [{ id: 0, key: keys }] : keys)
  return integrity
}

const NO_KEYS: readonly number[] = Object.freeze([])

export const crcIntegrity: Integrity = Object.freeze({
  mode: 'crc' as const,
  flags: 0,
  authenticated: false,
  trailerBytes: CRC_BYTES,
  keyIds: () => NO_KEYS,
  hasKey: (id: number) => id === 0,
  seal(data: Uint8Array, length: number): void {
    const crc = crc32c(data, 0, length)
    data[length] = crc >>> 24
    data[length + 1] = (crc >>> 16) & 0xff
    data[length + 2] = (crc >>> 8) & 0xff
    data[length + 3] = crc & 0xff
  },
  open(data: Uint8Array): boolean {
    const n = data.length - CRC_BYTES
    if (n < 0) return false
    const stored =
      ((data[n]! << 24) | (data[n + 1]! << 16) | (data[n + 2]! << 8) | data[n + 3]!) >>> 0
    return crc32c(data, 0, n) === stored
  },
  setKeys(): void {},
})

/**
 * The integrity mode for a group: CRC32C without a key, HMAC with one, AEAD with one and
 * `encrypt`. `key` is one key (id 0) or a keyring.
 */
export function integrityFor(
  key: Uint8Array | readonly GroupKey[] | undefined,
  encrypt: false | AeadCipher = false,
): Integrity {
  if (key === undefined) return crcIntegrity
  return encrypt === false ? hmacIntegrity(key) : aeadIntegrity(key, encrypt)
}
