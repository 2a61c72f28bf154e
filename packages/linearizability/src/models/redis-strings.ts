/**
 * Redis's rules for string values that INCR and APPEND depend on: what counts as an integer
 * (`string2ll`: an optional minus, no plus, no leading zeros, no spaces, within 64 bits) and
 * lengths in bytes of UTF-8, as the server counts them.
 */

const INT64_MIN = -(2n ** 63n)
const INT64_MAX = 2n ** 63n - 1n
const INTEGER = /^(?:0|-?[1-9][0-9]*)$/

/** The value as Redis's INCR reads it, or `undefined` when Redis calls it "not an integer". */
export function redisInteger(value: string): bigint | undefined {
  if (value.length > 20 || !INTEGER.test(value)) return undefined
  const parsed = BigInt(value)
  return parsed < INT64_MIN || parsed > INT64_MAX ? undefined : parsed
}

export function fitsInt64(value: bigint): boolean {
  return value >= INT64_MIN && value <= INT64_MAX
}

/** Length in bytes of the string encoded as UTF-8 (a lone surrogate encodes as U+FFFD: 3). */
export function utf8Length(value: string): number {
  let bytes = 0
  for (const char of value) {
    const code = char.codePointAt(0)!
    bytes += code < 0x80 ? 1 : code < 0x800 ? 2 : code < 0x10000 ? 3 : 4
  }
  return bytes
}
