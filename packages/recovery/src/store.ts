/**
 * How checkpoints lie in storage (keys under the session's own storage scope):
 *
 *   checkpoint/<generation, 16 digits>            the manifest (`encodeManifest`)
 *   checkpoint/<generation>/<part, 8 digits>      the record's parts, in order
 *   head                                          the newest generation (f64)
 *   transfer                                      a state transfer under way (`TransferMarker`)
 *
 * A record is written in parts so that a donor serves a state transfer part by part from
 * storage and a fetcher writes each part as it comes: neither holds the record whole while
 * it travels. A generation is readable only when its manifest is intact and every part matches
 * its CRC; the parts concatenated then decode as a checkpoint record (its own CRC again).
 *
 * Invariants: a generation's manifest is written in the same batch as its parts (or, for a
 * fetched record, after all of them are in and checked), so a manifest never names a part that
 * is not there; deleting a generation deletes its manifest and its parts in one batch.
 */
import { DecodeError, type StableStorage, StorageError, type StorageOp } from '@consul/xkernel'
import { type CheckpointRecord, decodeCheckpoint, decodeManifest, type Manifest } from './codec.js'

export const KEY_PREFIX = 'checkpoint/'
export const HEAD_KEY = 'head'
export const TRANSFER_KEY = 'transfer'

export const keyOf = (generation: number) => `${KEY_PREFIX}${String(generation).padStart(16, '0')}`
export const partKey = (generation: number, index: number) =>
  `${keyOf(generation)}/${String(index).padStart(8, '0')}`

export function headValue(generation: number): Uint8Array {
  const head = new Uint8Array(8)
  new DataView(head.buffer).setFloat64(0, generation)
  return head
}

/**
 * Fault injection for tests and campaigns: damages every checkpoint manifest of group `port`
 * in a (stopped) host's storage, in whichever configuration — each cut short by one byte, its
 * parts left in place, as a torn write would; damaged again, it stays damaged — so that a
 * restart finds no usable checkpoint. Returns how many.
 */
export function damageCheckpoints(storage: StableStorage, port: string): number {
  // Every configuration's: `recovery/<port>/…` for the first, `recovery/<port>@<c>/…` after.
  const stem = `recovery/${port}`
  const manifest = new RegExp(`^(/|@\\d+/)${KEY_PREFIX}\\d{16}$`)
  let damaged = 0
  for (const { key, value } of [...storage.scan({ prefix: stem })]) {
    if (!manifest.test(key.slice(stem.length))) continue
    // Cut short by one byte (a torn write): damaged again, it stays damaged — a flipped
    // byte flipped twice would be whole again.
    storage.put(key, value.slice(0, Math.max(0, value.length - 1)))
    damaged++
  }
  return damaged
}

/** The batch that writes a record's parts (the manifest is written by the caller). */
export function partOps(generation: number, parts: readonly Uint8Array[]): StorageOp[] {
  return parts.map((value, i) => ({ type: 'put' as const, key: partKey(generation, i), value }))
}

/** The batch that deletes a generation: its manifest and every part found. */
export function deleteOps(storage: StableStorage, generation: number): StorageOp[] {
  const ops: StorageOp[] = []
  for (const { key } of storage.scan({ prefix: keyOf(generation) })) ops.push({ type: 'del', key })
  return ops
}

/** `error` is one storage or decoding can raise for a bad record (not a bug of ours). */
export const isReadError = (error: unknown): boolean =>
  StorageError.isInstance(error) || DecodeError.isInstance(error)

/** The manifest of `generation`: `undefined` when there is none; throws when unreadable. */
export function readManifest(storage: StableStorage, generation: number): Manifest | undefined {
  const bytes = storage.get(keyOf(generation))
  if (bytes === undefined) return undefined
  const manifest = decodeManifest(bytes)
  if (manifest.generation !== generation)
    throw new DecodeError(
      'INVALID',
      `manifest of generation ${manifest.generation} under ${generation}`,
    )
  return manifest
}

/** Part `index` of `generation`, checked against the manifest; throws when missing or bad. */
export function readPart(
  storage: StableStorage,
  manifest: Manifest,
  index: number,
  crc: (bytes: Uint8Array) => number,
): Uint8Array {
  const bytes = storage.get(partKey(manifest.generation, index))
  if (bytes === undefined) throw new DecodeError('TRUNCATED', `part ${index} is missing`)
  if (crc(bytes) !== manifest.partCrcs[index])
    throw new DecodeError('INVALID', `part ${index} fails its checksum`)
  return bytes
}

/**
 * The record of `generation`, whole (a restore gives every session its state as bytes):
 * `undefined` when there is none; throws `DecodeError` / `StorageError` when unreadable.
 */
export function readRecord(
  storage: StableStorage,
  generation: number,
  crc: (bytes: Uint8Array) => number,
): { readonly manifest: Manifest; readonly record: CheckpointRecord } | undefined {
  const manifest = readManifest(storage, generation)
  if (manifest === undefined) return undefined
  const whole = new Uint8Array(manifest.length)
  let at = 0
  for (let i = 0; i < manifest.partCrcs.length; i++) {
    const part = readPart(storage, manifest, i, crc)
    if (at + part.length > whole.length) throw new DecodeError('INVALID', 'parts exceed the record')
    whole.set(part, at)
    at += part.length
  }
  if (at !== whole.length) throw new DecodeError('TRUNCATED', 'parts fall short of the record')
  const record = decodeCheckpoint(whole, crc)
  if (record.wave !== manifest.wave)
    throw new DecodeError(
      'INVALID',
      `record of wave ${record.wave} under a manifest of wave ${manifest.wave}`,
    )
  return { manifest, record }
}
