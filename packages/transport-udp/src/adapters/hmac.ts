/**
 * HMAC-SHA-256 truncated to its first 16 bytes (128 bits, as RFC 2104 §5 and RFC 4868
 * allow): the authentication tag on datagrams of a group with a key. Truncation halves the
 * trailer; 128 bits still leaves forgery at 2^-128 per attempt.
 *
 * Invariant: the tag is exactly the first `MAC_BYTES` of the full HMAC-SHA-256, and
 * comparison is constant-time (`timingSafeEqual`), so a forger learns nothing from timing.
 *
 * Under `src/adapters/` because it is built on `node:crypto`, which the determinism lint rule
 * keeps out of the rest of the package (the same module also holds real entropy).
 */
import { createHmac, createSecretKey, type KeyObject, timingSafeEqual } from 'node:crypto'

export const MAC_BYTES = 16

/** The smallest key `udp()` accepts: shorter keys make brute force too cheap. */
export const MIN_KEY_BYTES = 16

/** A key prepared once, so each datagram does not re-import it. */
export type MacKey = KeyObject

export function macKey(key: Uint8Array): MacKey {
  return createSecretKey(key)
}

/** Writes the 16-byte tag of `data[0, length)` at `data[length, length + 16)`. */
export function writeMac(key: MacKey, data: Uint8Array, length: number): void {
  const digest = createHmac('sha256', key).update(data.subarray(0, length)).digest()
  data.set(digest.subarray(0, MAC_BYTES), length)
}

/** The truncated tag of `data` (a fresh 16-byte array), for tests and tools. */
export function macOf(key: MacKey, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(data.length + MAC_BYTES)
  out.set(data)
  writeMac(key, out, data.length)
  return out.slice(data.length)
}

/** Whether `data` ends in the right tag for everything before it. */
export function checkMac(key: MacKey, data: Uint8Array): boolean {
  if (data.length < MAC_BYTES) return false
  const signed = data.length - MAC_BYTES
  const digest = createHmac('sha256', key).update(data.subarray(0, signed)).digest()
  return timingSafeEqual(digest.subarray(0, MAC_BYTES), data.subarray(signed))
}
