/**
 * Fragments: a message too large for one datagram travels as `ceil(total / chunkSize)`
 * datagrams, each with a 12-byte fragment header before its chunk:
 *
 * ```
 * offset  bytes  field
 *      0      4  message id, u32 (per sender; with `total` and `chunkSize` it names the message)
 *      4      4  total message length, u32
 *      8      2  chunk size, u16 (every fragment's chunk but the last is exactly this long)
 *     10      2  index, u16 (this chunk starts at index × chunkSize)
 *     12      …  chunk
 * ```
 *
 * Invariant: the header alone fixes where a chunk goes and how long it must be, so chunks of
 * a well-formed message can never overlap or leave a gap; `parseFragment` rejects anything
 * else (count below 2 or above 65,536, index out of range, wrong chunk length). Pure
 * functions; nothing throws on any input.
 */

export const FRAGMENT_HEADER_BYTES = 12

/** Index is a u16, so a message has at most this many fragments. */
export const MAX_FRAGMENTS = 0x10000

export interface FragmentHeader {
  readonly messageId: number
  readonly total: number
  readonly chunkSize: number
  readonly index: number
  /** How many fragments the message has. */
  readonly count: number
  /** Where this chunk goes in the message. */
  readonly offset: number
  /** The chunk is `bytes[chunkStart, chunkStart + (chunk length))`. */
  readonly chunkStart: number
  readonly chunkLength: number
}

/** How many fragments a message of `total` bytes needs with chunks of `chunkSize`. */
export function fragmentCount(total: number, chunkSize: number): number {
  return Math.ceil(total / chunkSize)
}

/** Writes a fragment header at `bytes[at, at + 12)`. */
export function writeFragmentHeader(
  bytes: Uint8Array,
  at: number,
  messageId: number,
  total: number,
  chunkSize: number,
  index: number,
): void {
  bytes[at] = messageId >>> 24
  bytes[at + 1] = (messageId >>> 16) & 0xff
  bytes[at + 2] = (messageId >>> 8) & 0xff
  bytes[at + 3] = messageId & 0xff
  bytes[at + 4] = total >>> 24
  bytes[at + 5] = (total >>> 16) & 0xff
  bytes[at + 6] = (total >>> 8) & 0xff
  bytes[at + 7] = total & 0xff
  bytes[at + 8] = chunkSize >>> 8
  bytes[at + 9] = chunkSize & 0xff
  bytes[at + 10] = index >>> 8
  bytes[at + 11] = index & 0xff
}

/**
 * Reads the fragment in `bytes[start, end)`, or `undefined` when it is malformed.
 */
export function parseFragment(
  bytes: Uint8Array,
  start: number,
  end: number,
): FragmentHeader | undefined {
  if (end - start <= FRAGMENT_HEADER_BYTES) return undefined
  const b = bytes
  const messageId =
    ((b[start]! << 24) | (b[start + 1]! << 16) | (b[start + 2]! << 8) | b[start + 3]!) >>> 0
  const total =
    ((b[start + 4]! << 24) | (b[start + 5]! << 16) | (b[start + 6]! << 8) | b[start + 7]!) >>> 0
  const chunkSize = (b[start + 8]! << 8) | b[start + 9]!
  const index = (b[start + 10]! << 8) | b[start + 11]!
  if (chunkSize === 0) return undefined
  const count = fragmentCount(total, chunkSize)
  // One chunk would have been sent in a bundle; more than MAX_FRAGMENTS cannot be indexed.
  if (count < 2 || count > MAX_FRAGMENTS || index >= count) return undefined
  const offset = index * chunkSize
  const chunkLength = Math.min(chunkSize, total - offset)
  const chunkStart = start + FRAGMENT_HEADER_BYTES
  if (end - chunkStart !== chunkLength) return undefined
  return { messageId, total, chunkSize, index, count, offset, chunkStart, chunkLength }
}
