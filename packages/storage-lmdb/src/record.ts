/**
 * The on-disk record: what LMDB stores as the value under a key.
 *
 *   byte 0     format: RECORD_FORMAT = 2 (written), or 1 (read: records of earlier releases)
 *   bytes 1-4  format 2: CRC-32 (IEEE) of (key UTF-8 bytes ‖ value bytes), little-endian —
 *              computed natively by `node:zlib` (≈ 2.4 GB/s on the project's machine);
 *              format 1: CRC32C of the same, computed in TypeScript (≈ 0.5 GB/s)
 *   bytes 5-   the value
 *
 * The checksum covers the key too, so a record that ends up under the wrong key (a damaged
 * branch page, a misdirected write) fails verification just like a flipped value bit.
 * Invariant: `decodeRecord(key, encodeRecord(key, v))` returns `v`; any other bytes either
 * decode to exactly what was encoded or are reported as damaged, never returned.
 */
import { crc32 } from './adapters/native-crc32.js'
import { CRC32C_INIT, crc32cFinish, crc32cUpdate } from './checksum.js'

/** The format written: CRC-32 by `node:zlib`. */
export const RECORD_FORMAT = 2
/** The format of earlier releases, still read: CRC32C in TypeScript. */
export const RECORD_FORMAT_CRC32C = 1
export const RECORD_HEADER_BYTES = 5

function checksum(format: number, keyBytes: Uint8Array, value: Uint8Array): number {
  return format === RECORD_FORMAT_CRC32C
    ? crc32cFinish(crc32cUpdate(crc32cUpdate(CRC32C_INIT, keyBytes), value))
    : crc32(value, crc32(keyBytes))
}

/** The record to store for `value` under the key whose UTF-8 bytes are `keyBytes`. */
export function encodeRecord(keyBytes: Uint8Array, value: Uint8Array): Uint8Array {
  // Buffer.allocUnsafe draws small records from Node's pool; every byte is written below.
  const record = Buffer.allocUnsafe(RECORD_HEADER_BYTES + value.length)
  record[0] = RECORD_FORMAT
  record.writeUInt32LE(checksum(RECORD_FORMAT, keyBytes, value), 1)
  record.set(value, RECORD_HEADER_BYTES)
  return record
}

/** A copy of the value a record holds, as a plain `Uint8Array` the caller owns. */
export function recordValue(record: Uint8Array): Uint8Array {
  // Not `record.slice()`: on a Buffer that is a view, not a copy.
  return new Uint8Array(record.subarray(RECORD_HEADER_BYTES))
}

/**
 * Why `record` (read back under `keyBytes`) is damaged, or `undefined` when it verifies.
 * The caller turns a reason into a `StorageCorruptedError` naming the key and the file.
 */
export function recordDamage(keyBytes: Uint8Array, record: Uint8Array): string | undefined {
  if (record.length < RECORD_HEADER_BYTES) {
    return `record is ${record.length} bytes, shorter than its ${RECORD_HEADER_BYTES}-byte header (torn write)`
  }
  const format = record[0]!
  if (format !== RECORD_FORMAT && format !== RECORD_FORMAT_CRC32C) {
    return `unknown record format ${format} (expected ${RECORD_FORMAT} or ${RECORD_FORMAT_CRC32C})`
  }
  const stored = (record[1]! | (record[2]! << 8) | (record[3]! << 16) | (record[4]! << 24)) >>> 0
  const actual = checksum(format, keyBytes, record.subarray(RECORD_HEADER_BYTES))
  if (stored !== actual) {
    const name = format === RECORD_FORMAT ? 'CRC-32' : 'CRC32C'
    return `checksum mismatch (stored ${name} ${hex(stored)}, computed ${hex(actual)})`
  }
  return undefined
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`
}
