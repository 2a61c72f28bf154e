/**
 * What a scan covers: `ScanOptions` turned into one checked range, tested on string keys
 * (for the in-memory overlay) and as UTF-8 byte bounds (for the LMDB cursor).
 *
 * Invariant: a key is in the range iff it starts with `prefix`, is ≥ `start` and < `end` in
 * Unicode code point order. Code point order is UTF-8 byte order, so the byte bounds select
 * the same keys (or, for bounds with a lone surrogate, a superset); the adapter tests every
 * key it reads with `inScanRange`.
 */
import { compareKeys, type ScanOptions, StorageError } from '@consul/xkernel'

export interface ScanRange {
  readonly prefix: string
  /** Inclusive lower bound, if any. */
  readonly start: string | undefined
  /** Exclusive upper bound, if any. */
  readonly end: string | undefined
  readonly reverse: boolean
  /** Stop after this many entries (a count that is not ≥ 0 behaves as in MemoryStorage). */
  readonly limit: number
}

function optionalString(
  options: ScanOptions,
  name: 'prefix' | 'start' | 'end',
): string | undefined {
  const value: unknown = options[name]
  if (value === undefined || typeof value === 'string') return value
  throw new StorageError('INVALID_KEY', `scan option ${name} must be a string, got ${typeof value}`)
}

/** Checks `options` and fills in the defaults. */
export function scanRange(options: ScanOptions | undefined): ScanRange {
  if (options === undefined) {
    return { prefix: '', start: undefined, end: undefined, reverse: false, limit: Infinity }
  }
  if (options === null || typeof options !== 'object') {
    throw new StorageError('INVALID_VALUE', 'scan() takes an options object or nothing')
  }
  const limit: unknown = options.limit
  if (limit !== undefined && typeof limit !== 'number') {
    throw new StorageError(
      'INVALID_VALUE',
      `scan option limit must be a number, got ${typeof limit}`,
    )
  }
  return {
    prefix: optionalString(options, 'prefix') ?? '',
    start: optionalString(options, 'start'),
    end: optionalString(options, 'end'),
    reverse: Boolean(options.reverse),
    limit: limit ?? Infinity,
  }
}

/** Whether `key` is one the scan returns. */
export function inScanRange(range: ScanRange, key: string): boolean {
  return (
    key.startsWith(range.prefix) &&
    (range.start === undefined || compareKeys(key, range.start) >= 0) &&
    (range.end === undefined || compareKeys(key, range.end) < 0)
  )
}

/** The smallest key the scan can return a key at or above (as a string), or `undefined`. */
export function lowestKey(range: ScanRange): string | undefined {
  const { prefix, start } = range
  if (start === undefined) return prefix === '' ? undefined : prefix
  return compareKeys(start, prefix) > 0 ? start : prefix
}

export interface ByteBounds {
  /** Inclusive. */
  readonly low: Buffer | undefined
  /** Exclusive. */
  readonly high: Buffer | undefined
}

// A lone UTF-16 surrogate: stored keys never contain one (the adapter refuses such keys), but
// a scan bound may (a prefix cut in the middle of a surrogate pair), and it has no UTF-8 form.
const LONE_SURROGATE = /\p{Cs}/u

/** `s` up to its first lone surrogate, and whether anything was cut. */
function wellFormedHead(s: string): { readonly head: string; readonly cut: boolean } {
  const at = LONE_SURROGATE.exec(s)?.index
  return at === undefined ? { head: s, cut: false } : { head: s.slice(0, at), cut: true }
}

/** Bytes above every UTF-8 key that starts with `s` (no UTF-8 sequence contains 0xFF). */
function aboveAllWith(s: string): Buffer {
  return Buffer.concat([Buffer.from(s, 'utf8'), Buffer.of(0xff)])
}

/**
 * UTF-8 bounds of the range, for a cursor over binary keys. Exact for well-formed bounds; a
 * bound with a lone surrogate is widened to the well-formed part before it (the caller
 * filters every key with `inScanRange`, so a wider cursor range only costs a few reads).
 */
export function byteBounds(range: ScanRange): ByteBounds {
  const lowest = lowestKey(range)
  const low = lowest === undefined ? undefined : Buffer.from(wellFormedHead(lowest).head, 'utf8')
  let high: Buffer | undefined
  if (range.end !== undefined) {
    const { head, cut } = wellFormedHead(range.end)
    high = cut ? aboveAllWith(head) : Buffer.from(head, 'utf8')
  }
  if (range.prefix !== '') {
    // prefix ‖ 0xFF is above every key with the prefix and below every greater key without it.
    const prefixHigh = aboveAllWith(wellFormedHead(range.prefix).head)
    if (high === undefined || Buffer.compare(prefixHigh, high) < 0) high = prefixHigh
  }
  return { low, high }
}
