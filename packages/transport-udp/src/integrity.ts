/**
 * The trailer on every datagram. With a group key it is a 16-byte truncated HMAC-SHA-256
 * (authentication: only key holders can produce a datagram the group accepts); without one
 * it is a 4-byte CRC32C (integrity against accidental corruption only). Both cover every
 * byte before the trailer, header included.
 *
 * Invariant: a receiver uses only its own mode. A keyed receiver never accepts a CRC
 * datagram, whatever the header's flags claim, so dropping the key from a datagram is not a
 * way around authentication.
 */
import { checkMac, MAC_BYTES, type MacKey, macKey, writeMac } from './adapters/hmac.js'
import { crc32c } from './crc32c.js'

export const CRC_BYTES = 4

export interface Integrity {
  /** HMAC (true) or CRC32C (false); mirrored in the header's `authenticated` flag. */
  readonly authenticated: boolean
  /** Bytes the trailer takes at the end of a datagram. */
  readonly trailerBytes: number
  /** Writes the trailer of `data[0, length)` at `data[length, length + trailerBytes)`. */
  seal(data: Uint8Array, length: number): void
  /** Whether the last `trailerBytes` of `data` are right for the bytes before them. */
  check(data: Uint8Array): boolean
}

export function hmacIntegrity(key: Uint8Array): Integrity {
  const prepared: MacKey = macKey(key)
  return {
    authenticated: true,
    trailerBytes: MAC_BYTES,
    seal: (data, length) => writeMac(prepared, data, length),
    check: (data) => checkMac(prepared, data),
  }
}

export const crcIntegrity: Integrity = Object.freeze({
  authenticated: false,
  trailerBytes: CRC_BYTES,
  seal(data: Uint8Array, length: number): void {
    const crc = crc32c(data, 0, length)
    data[length] = crc >>> 24
    data[length + 1] = (crc >>> 16) & 0xff
    data[length + 2] = (crc >>> 8) & 0xff
    data[length + 3] = crc & 0xff
  },
  check(data: Uint8Array): boolean {
    const n = data.length - CRC_BYTES
    if (n < 0) return false
    const stored =
      ((data[n]! << 24) | (data[n + 1]! << 16) | (data[n + 2]! << 8) | data[n + 3]!) >>> 0
    return crc32c(data, 0, n) === stored
  },
})

/** The integrity mode for a group: HMAC with `key`, CRC32C without. */
export function integrityFor(key: Uint8Array | undefined): Integrity {
  return key === undefined ? crcIntegrity : hmacIntegrity(key)
}
