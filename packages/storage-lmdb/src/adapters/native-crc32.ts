/**
 * CRC-32 (IEEE) from `node:zlib` — native, ≈ 5× the TypeScript CRC32C: the checksum of the
 * records this package writes (format 2, `record.ts`). `crc32(data, previous)` continues a
 * running value, so the key and the value are checksummed without concatenating them.
 */
import { crc32 as zlibCrc32 } from 'node:zlib'

export function crc32(data: Uint8Array, previous = 0): number {
  return zlibCrc32(data, previous) >>> 0
}
