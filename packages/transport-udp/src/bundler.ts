/**
 * Bundles: several messages to the same destination packed into one datagram body, each as
 * `u16 length (big-endian) | bytes`. Fewer, fuller datagrams are what make small messages
 * cheap: the per-datagram costs (a system call, a trailer, an HMAC) are paid once per bundle.
 *
 * Invariant: a well-formed bundle body holds at least one entry and its entries tile the body
 * exactly; `countBundle` says -1 for anything else, and the receiver then delivers none of
 * it (a half-delivered bundle would be a message stream nobody sent).
 */

/** Bytes an entry takes besides its message. */
export const BUNDLE_ENTRY_OVERHEAD = 2

/** The largest message a bundle entry can describe. */
export const MAX_BUNDLE_MESSAGE = 0xffff

/** Writes `data` as an entry at `target[at…]`; returns the offset after it. */
export function writeBundleEntry(target: Uint8Array, at: number, data: Uint8Array): number {
  const n = data.length
  target[at] = n >>> 8
  target[at + 1] = n & 0xff
  target.set(data, at + 2)
  return at + 2 + n
}

/** How many entries `bytes[start, end)` holds, or -1 when it is not a well-formed bundle. */
export function countBundle(bytes: Uint8Array, start: number, end: number): number {
  if (start >= end) return -1
  let at = start
  let count = 0
  while (at < end) {
    if (end - at < BUNDLE_ENTRY_OVERHEAD) return -1
    at += BUNDLE_ENTRY_OVERHEAD + ((bytes[at]! << 8) | bytes[at + 1]!)
    if (at > end) return -1
    count++
  }
  return count
}

/**
 * Calls `visit(offset, length)` for every entry of a bundle body `countBundle` accepted,
 * in order.
 */
export function forEachInBundle(
  bytes: Uint8Array,
  start: number,
  end: number,
  visit: (offset: number, length: number) => void,
): void {
  let at = start
  while (at < end) {
    const length = (bytes[at]! << 8) | bytes[at + 1]!
    visit(at + BUNDLE_ENTRY_OVERHEAD, length)
    at += BUNDLE_ENTRY_OVERHEAD + length
  }
}
