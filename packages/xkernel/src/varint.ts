/**
 * Unsigned LEB128 varints and zigzag signed varints over JavaScript numbers.
 *
 * Values are limited to the safe-integer range (|v| ≤ 2^53 − 1) so they round-trip through a
 * `number` exactly; a longer or larger encoding is rejected with a `DecodeError` rather than
 * silently losing precision.
 */
import { DecodeError } from './errors.js'

/** Largest value a varint may carry: `Number.MAX_SAFE_INTEGER`. */
export const MAX_VARINT = Number.MAX_SAFE_INTEGER
/** 2^53 − 1 needs 53 bits = 8 groups of 7 bits. */
export const MAX_VARINT_BYTES = 8

/** Bytes needed to encode `value` as an unsigned varint. */
export function uvarintLength(value: number): number {
  if (value < 0x80) return 1
  if (value < 0x4000) return 2
  if (value < 0x200000) return 3
  if (value < 0x10000000) return 4
  let n = 4
  let v = Math.floor(value / 0x10000000)
  while (v > 0) {
    n++
    v = Math.floor(v / 128)
  }
  return n
}

export function checkUvarint(value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`varint value must be a safe non-negative integer, got ${value}`)
  }
}

/** Writes `value` at `offset`; returns the offset after it. The caller checked the range. */
export function writeUvarint(bytes: Uint8Array, offset: number, value: number): number {
  while (value >= 0x80) {
    bytes[offset++] = (value % 128) | 0x80
    value = Math.floor(value / 128)
  }
  bytes[offset++] = value
  return offset
}

/**
 * Reads an unsigned varint at `offset`, not past `end`. Returns the value; the length read
 * is stored in `out.length` to avoid allocating a tuple on the hot path.
 */
export function readUvarint(
  bytes: Uint8Array,
  offset: number,
  end: number,
  out: { length: number },
): number {
  let result = 0
  let multiplier = 1
  for (let i = 0; i < MAX_VARINT_BYTES; i++) {
    if (offset + i >= end) {
      throw new DecodeError('TRUNCATED', `varint truncated after ${i} byte(s)`)
    }
    const byte = bytes[offset + i]!
    result += (byte & 0x7f) * multiplier
    if ((byte & 0x80) === 0) {
      if (i > 0 && byte === 0) {
        throw new DecodeError('INVALID', 'varint has a redundant trailing zero byte')
      }
      if (result > MAX_VARINT) {
        throw new DecodeError('VARINT_OVERFLOW', 'varint exceeds 2^53 - 1')
      }
      out.length = i + 1
      return result
    }
    multiplier *= 128
  }
  throw new DecodeError('VARINT_OVERFLOW', `varint longer than ${MAX_VARINT_BYTES} bytes`)
}

/** Zigzag: 0, -1, 1, -2, … ↦ 0, 1, 2, 3, … */
export function zigzagEncode(value: number): number {
  return value >= 0 ? value * 2 : -value * 2 - 1
}

export function zigzagDecode(value: number): number {
  return value % 2 === 0 ? value / 2 : -(value + 1) / 2
}

/** Signed values whose zigzag form fits a varint: |v| ≤ 2^52 − 1 roughly. */
export function checkVarint(value: number): void {
  if (!Number.isSafeInteger(value) || Math.abs(value) > Math.floor(MAX_VARINT / 2)) {
    throw new RangeError(
      `signed varint value must be an integer with |v| <= 2^52 - 1, got ${value}`,
    )
  }
}
