/**
 * CRC32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum every stored record
 * carries. Computed in TypeScript with slicing-by-8 tables (8 KiB, built once), so it needs no
 * native module and gives the same answer everywhere; the result matches iSCSI / ext4 /
 * `crc32c` libraries (`crc32c("123456789") === 0xe3069283`).
 *
 * Invariant: `crc32cFinish(crc32cUpdate(crc32cUpdate(CRC32C_INIT, a), b))` equals the CRC32C of
 * `a` followed by `b`, so a record's key and value are checksummed without concatenating them.
 */

const POLY = 0x82f63b78

/** `TABLES[k * 256 + b]`: CRC of byte `b` followed by `k` zero bytes. */
const TABLES = (() => {
  const t = new Int32Array(8 * 256)
  for (let b = 0; b < 256; b++) {
    let c = b
    for (let i = 0; i < 8; i++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1
    t[b] = c
  }
  for (let b = 0; b < 256; b++) {
    for (let k = 1; k < 8; k++) {
      const prev = t[(k - 1) * 256 + b]!
      t[k * 256 + b] = (prev >>> 8) ^ t[prev & 0xff]!
    }
  }
  return t
})()

/** The running value to start from. */
export const CRC32C_INIT = 0xffffffff

/** Feeds `data` into a running CRC32C (start from `CRC32C_INIT`, end with `crc32cFinish`). */
export function crc32cUpdate(crc: number, data: Uint8Array): number {
  const t = TABLES
  const n = data.length
  let i = 0
  let c = crc | 0
  // Eight bytes per step: two 32-bit words through eight tables.
  for (const stop = n - 8; i <= stop; i += 8) {
    const lo = c ^ (data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24))
    const hi = data[i + 4]! | (data[i + 5]! << 8) | (data[i + 6]! << 16) | (data[i + 7]! << 24)
    c =
      t[1792 + (lo & 0xff)]! ^
      t[1536 + ((lo >>> 8) & 0xff)]! ^
      t[1280 + ((lo >>> 16) & 0xff)]! ^
      t[1024 + (lo >>> 24)]! ^
      t[768 + (hi & 0xff)]! ^
      t[512 + ((hi >>> 8) & 0xff)]! ^
      t[256 + ((hi >>> 16) & 0xff)]! ^
      t[hi >>> 24]!
  }
  for (; i < n; i++) c = (c >>> 8) ^ t[(c ^ data[i]!) & 0xff]!
  return c
}

/** The final checksum (an unsigned 32-bit integer) of a running CRC32C. */
export function crc32cFinish(crc: number): number {
  return (crc ^ 0xffffffff) >>> 0
}

/** CRC32C of `data` as an unsigned 32-bit integer. */
export function crc32c(data: Uint8Array): number {
  return crc32cFinish(crc32cUpdate(CRC32C_INIT, data))
}
