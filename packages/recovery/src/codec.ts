/**
 * The checkpoint record: one storage value holding the wave, a generation number and every
 * session's state, with a CRC-32 over all of it (storage checks its own checksums too; this
 * one also catches a record written by a different version or cut short by a bug).
 *
 * Layout (big-endian): `"CKP" 0x01` · generation f64 · wave f64 · count u16 ·
 * count × (name length u16 · name UTF-8 · state length u32 · state) · CRC-32 u32.
 */
import { DecodeError, type SessionState } from '@consul/xkernel'

const MAGIC = [0x43, 0x4b, 0x50, 0x01] as const

export interface CheckpointRecord {
  /** Counts up by one per checkpoint this member took (the storage key sorts by it). */
  readonly generation: number
  /** The Order's wave at the boundary the states were taken at. */
  readonly wave: number
  readonly states: readonly SessionState[]
}

/** CRC-32 (IEEE) tables for slicing-by-8: eight bytes per step. */
const CRC_TABLES = (() => {
  const t = new Uint32Array(8 * 256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    t[n] = c >>> 0
  }
  for (let n = 0; n < 256; n++) {
    let c = t[n]!
    for (let k = 1; k < 8; k++) {
      c = t[c & 0xff]! ^ (c >>> 8)
      t[k * 256 + n] = c >>> 0
    }
  }
  return t
})()

export function crc32(bytes: Uint8Array, end = bytes.length): number {
  return crc32Update(0, bytes, end)
}

/** The CRC-32 of `previous`'s bytes followed by `bytes[0, end)` (streamed over parts). */
export function crc32Update(previous: number, bytes: Uint8Array, end = bytes.length): number {
  const t = CRC_TABLES
  let c = (previous ^ 0xffffffff) >>> 0
  let i = 0
  for (; i + 8 <= end; i += 8) {
    const a = c ^ (bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24))
    c =
      t[1792 + (a & 0xff)]! ^
      t[1536 + ((a >>> 8) & 0xff)]! ^
      t[1280 + ((a >>> 16) & 0xff)]! ^
      t[1024 + (a >>> 24)]! ^
      t[768 + bytes[i + 4]!]! ^
      t[512 + bytes[i + 5]!]! ^
      t[256 + bytes[i + 6]!]! ^
      t[bytes[i + 7]!]!
  }
  for (; i < end; i++) c = t[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8)
  return (c ^ 0xffffffff) >>> 0
}

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

/** A CRC-32 (IEEE) implementation: this module's, or a faster one given in the options. */
export type Crc32 = (bytes: Uint8Array) => number

export function encodeCheckpoint(record: CheckpointRecord, crc: Crc32 = crc32): Uint8Array {
  const names = record.states.map((s) => encoder.encode(s.protocol))
  let size = 4 + 8 + 8 + 2 + 4
  for (const [i, s] of record.states.entries()) size += 2 + names[i]!.length + 4 + s.state.length
  const out = new Uint8Array(size)
  const view = new DataView(out.buffer)
  out.set(MAGIC, 0)
  view.setFloat64(4, record.generation)
  view.setFloat64(12, record.wave)
  view.setUint16(20, record.states.length)
  let at = 22
  for (const [i, s] of record.states.entries()) {
    const name = names[i]!
    view.setUint16(at, name.length)
    out.set(name, at + 2)
    at += 2 + name.length
    view.setUint32(at, s.state.length)
    out.set(s.state, at + 4)
    at += 4 + s.state.length
  }
  view.setUint32(at, crc(out.subarray(0, at)))
  return out
}

/**
 * The frame every stored format of this package shares — a 4-byte magic first, a CRC-32 of all
 * before it last — checked: length, magic, CRC. `fail` throws `DecodeError` naming `what`.
 */
export function openChecked(
  bytes: Uint8Array,
  magic: readonly number[],
  minLength: number,
  what: string,
  crc: Crc32 = crc32,
): { readonly view: DataView; readonly end: number; readonly fail: (why: string) => never } {
  const fail = (why: string): never => {
    throw new DecodeError('INVALID', `not a ${what}: ${why}`)
  }
  if (bytes.length < minLength) fail('too short')
  if (magic.some((b, i) => bytes[i] !== b)) fail('bad magic or version')
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const end = bytes.length - 4
  if (view.getUint32(end) !== crc(bytes.subarray(0, end))) fail('checksum mismatch')
  return { view, end, fail }
}

/** Decodes a record; throws `DecodeError` for anything that is not one, intact. */
export function decodeCheckpoint(bytes: Uint8Array, crc: Crc32 = crc32): CheckpointRecord {
  const { view, end, fail } = openChecked(bytes, MAGIC, 26, 'checkpoint record', crc)
  const generation = view.getFloat64(4)
  const wave = view.getFloat64(12)
  if (!Number.isSafeInteger(generation) || generation < 1) fail('bad generation')
  if (!Number.isSafeInteger(wave) || wave < 0) fail('bad wave')
  const count = view.getUint16(20)
  const states: SessionState[] = []
  let at = 22
  for (let i = 0; i < count; i++) {
    if (at + 2 > end) fail('truncated')
    const nameLength = view.getUint16(at)
    if (at + 2 + nameLength + 4 > end) fail('truncated')
    const protocol = decoder.decode(bytes.subarray(at + 2, at + 2 + nameLength))
    at += 2 + nameLength
    const length = view.getUint32(at)
    if (at + 4 + length > end) fail('truncated')
    states.push({ protocol, state: bytes.slice(at + 4, at + 4 + length) })
    at += 4 + length
  }
  if (at !== end) fail('trailing bytes')
  return { generation, wave, states }
}

// ---- the manifest: how a record is stored, in parts --------------------------------------

const MANIFEST_MAGIC = [0x43, 0x4b, 0x4d, 0x01] as const

/**
 * A record is stored (and transferred) in parts of `partBytes` (the last one shorter); the
 * manifest names them with a CRC-32 each and one over the whole record.
 *
 * Layout (big-endian): `"CKM" 0x01` · generation f64 · wave f64 · length f64 · partBytes u32 ·
 * parts u32 · record CRC-32 u32 · parts × part CRC-32 u32 · CRC-32 of all before u32.
 */
export interface Manifest {
  /** The storing member's generation (a fetched record gets a generation of the fetcher's). */
  readonly generation: number
  readonly wave: number
  /** The record's length in bytes. */
  readonly length: number
  readonly partBytes: number
  readonly recordCrc: number
  readonly partCrcs: readonly number[]
}

export const MAX_PARTS = 1 << 20

export function partCount(length: number, partBytes: number): number {
  return Math.max(1, Math.ceil(length / partBytes))
}

/** Splits a record into parts and describes them. */
export function manifestOf(
  generation: number,
  wave: number,
  record: Uint8Array,
  partBytes: number,
  crc: Crc32 = crc32,
): { readonly manifest: Manifest; readonly parts: Uint8Array[] } {
  const parts: Uint8Array[] = []
  for (let at = 0; at < record.length || parts.length === 0; at += partBytes)
    parts.push(record.subarray(at, Math.min(record.length, at + partBytes)))
  return {
    manifest: {
      generation,
      wave,
      length: record.length,
      partBytes,
      recordCrc: crc(record),
      partCrcs: parts.map((p) => crc(p)),
    },
    parts,
  }
}

export function encodeManifest(m: Manifest): Uint8Array {
  const out = new Uint8Array(4 + 8 * 3 + 4 * 3 + 4 * m.partCrcs.length + 4)
  const view = new DataView(out.buffer)
  out.set(MANIFEST_MAGIC, 0)
  view.setFloat64(4, m.generation)
  view.setFloat64(12, m.wave)
  view.setFloat64(20, m.length)
  view.setUint32(28, m.partBytes)
  view.setUint32(32, m.partCrcs.length)
  view.setUint32(36, m.recordCrc)
  let at = 40
  for (const c of m.partCrcs) {
    view.setUint32(at, c)
    at += 4
  }
  view.setUint32(at, crc32(out, at))
  return out
}

/** Decodes a manifest; throws `DecodeError` for anything that is not one, intact. */
export function decodeManifest(bytes: Uint8Array): Manifest {
  const { view, end, fail } = openChecked(bytes, MANIFEST_MAGIC, 44, 'checkpoint manifest')
  const generation = view.getFloat64(4)
  const wave = view.getFloat64(12)
  const length = view.getFloat64(20)
  const partBytes = view.getUint32(28)
  const parts = view.getUint32(32)
  if (!Number.isSafeInteger(generation) || generation < 1) fail('bad generation')
  if (!Number.isSafeInteger(wave) || wave < 0) fail('bad wave')
  if (!Number.isSafeInteger(length) || length < 26) fail('bad length')
  if (partBytes < 1 || parts < 1 || parts > MAX_PARTS || parts !== partCount(length, partBytes))
    fail('bad part layout')
  if (end !== 40 + 4 * parts) fail('wrong size')
  const partCrcs: number[] = []
  for (let i = 0; i < parts; i++) partCrcs.push(view.getUint32(40 + 4 * i))
  return { generation, wave, length, partBytes, recordCrc: view.getUint32(36), partCrcs }
}

/** The length of part `index` of a record laid out by `m`. */
export function partLength(m: Manifest, index: number): number {
  return Math.min(m.partBytes, m.length - index * m.partBytes)
}
