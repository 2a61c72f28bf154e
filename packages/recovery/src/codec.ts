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

const CRC_TABLE = (() => {
  const table = new Uint32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    table[n] = c >>> 0
  }
  return table
})()

export function crc32(bytes: Uint8Array, end = bytes.length): number {
  let c = 0xffffffff
  for (let i = 0; i < end; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8)
  return (c ^ 0xffffffff) >>> 0
}

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

export function encodeCheckpoint(record: CheckpointRecord): Uint8Array {
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
  view.setUint32(at, crc32(out, at))
  return out
}

/** Decodes a record; throws `DecodeError` for anything that is not one, intact. */
export function decodeCheckpoint(bytes: Uint8Array): CheckpointRecord {
  const fail = (why: string): never => {
    throw new DecodeError('INVALID', `not a checkpoint record: ${why}`)
  }
  if (bytes.length < 26) fail('too short')
  if (MAGIC.some((b, i) => bytes[i] !== b)) fail('bad magic or version')
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const end = bytes.length - 4
  if (view.getUint32(end) !== crc32(bytes, end)) fail('checksum mismatch')
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
