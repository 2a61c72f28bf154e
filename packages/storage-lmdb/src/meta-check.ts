/**
 * A check of LMDB's two meta pages before the file is handed to the native module.
 *
 * Record checksums (`record.ts`) cover our values; LMDB's own structures have no checksum,
 * and the `lmdb` native module crashes the whole process (SIGSEGV) when it opens a data file
 * whose meta pages are damaged or that is not an LMDB file at all. Opening such a directory
 * must instead give a clear `StorageError`, so the adapter reads the first two pages and
 * asks this function first.
 *
 * Layout (LMDB 1.0 as built into `lmdb` 3.x, little-endian): pages 0 and 1 are meta pages;
 * each starts with a 24-byte page header (page number, txn id, pad, flags at byte 18 with
 * P_META = 0x08, lower/upper), then the meta record: magic 0xBEEFC0DE at byte 24, data format
 * version at byte 28, and the page size (stored in the free-list DB's pad field) at byte 48.
 */

const MAGIC = 0xbeefc0de
/** The data format `lmdb` 3.x writes; another version would crash it just the same. */
export const LMDB_DATA_VERSION = 2
const P_META = 0x08
const MIN_PAGE = 512
const MAX_PAGE = 65536

/** Bytes to read from the start of data.mdb for `metaPageProblem`. */
export const META_CHECK_BYTES = 2 * MAX_PAGE

function u32(bytes: Uint8Array, at: number): number {
  return (
    (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)) >>> 0
  )
}

function pageProblem(bytes: Uint8Array, at: number, page: number): string | undefined {
  if (bytes.length < at + 52) return `meta page ${page} is missing (the file is too short)`
  if (u32(bytes, at + 24) !== MAGIC) return `meta page ${page} does not carry LMDB's magic number`
  const version = u32(bytes, at + 28)
  if (version !== LMDB_DATA_VERSION) {
    return `meta page ${page} has data format ${version}, expected ${LMDB_DATA_VERSION}`
  }
  if ((bytes[at + 18]! & P_META) === 0) return `page ${page} is not marked as a meta page`
  return undefined
}

/**
 * Why the data file starting with `head` (its first `META_CHECK_BYTES` bytes or all of it) and
 * `fileSize` bytes long cannot be opened safely, or `undefined` when both meta pages look
 * sound. An empty file is sound: LMDB initializes it.
 */
export function metaPageProblem(head: Uint8Array, fileSize: number): string | undefined {
  if (fileSize === 0) return undefined
  const first = pageProblem(head, 0, 0)
  if (first !== undefined) return first
  const pageSize = u32(head, 48)
  if (pageSize < MIN_PAGE || pageSize > MAX_PAGE || (pageSize & (pageSize - 1)) !== 0) {
    return `meta page 0 records an impossible page size ${pageSize}`
  }
  if (fileSize < 2 * pageSize) {
    return `the file is ${fileSize} bytes, shorter than its two ${pageSize}-byte meta pages`
  }
  return pageProblem(head, pageSize, 1)
}
