/**
 * Reading the message log back after a restart (`log.ts` writes it): every record under a
 * prefix, skipping — deleting and counting — records that fail their checksum; the newest
 * readable watermark generation; the own high-water mark. Also the log's key layout, shared
 * with the writer.
 *
 * Invariants: a damaged record never stops the scan; watermarks that exist but cannot be
 * read throw `LOG_CORRUPTED` (the log lacks a prefix it cannot describe), never a guess; the
 * generations found are reported so the writer continues above them.
 */
import {
  type Counters,
  type Logger,
  type StableStorage,
  StorageCorruptedError,
} from '@consul/xkernel'
import type { DataFrame } from './codec.js'
import { PsyncError } from './errors.js'

export interface Watermarks {
  /** Messages of member p with seq ≤ prunedSeq[p] were pruned. */
  readonly prunedSeq: readonly number[]
  /** Depth and vector of each member's highest pruned message (-1 / zeros when none). */
  readonly prunedDepth: readonly number[]
  readonly prunedVc: readonly (readonly number[])[]
  /** The prune floor they were written at: every pruned message had a depth below it. */
  readonly floor: number
  /** The floor was declared by checkpointing (`setPruneFloor`), not only `retainWaves`. */
  readonly declared: boolean
  /**
   * `[member, seq, depth, vc]` of each pruned message below its member's highest that a kept
   * message depends on (`ContextGraph.boundary`); absent in logs written before it.
   */
  readonly boundary?: readonly (readonly [number, number, number, readonly number[]])[]
}

/** What a restart reads back. */
export interface LoadedLog {
  readonly watermarks: Watermarks | undefined
  /** Every readable message frame not covered by the watermarks, in log order. */
  readonly frames: (DataFrame & { logKey: string })[]
  /** The highest own seq any durable commit recorded (0 when none). */
  readonly ownHighWater: number
  /**
   * False when the high-water mark cannot be trusted (a record of it and a message record were
   * both unreadable, or own messages are logged without one — a log of 0.1): the member must
   * learn from a peer how far its own messages went before it sends again.
   */
  readonly ownHighWaterCertain: boolean
  /** The exclusions applied in this conversation (`log.ts`: `x/<member>`), readable ones. */
  readonly exclusions: readonly StoredExclusion[]
}

/**
 * An exclusion recorded in the log: the member, its cut, and the first wave not yet complete
 * here when it was applied (`undefined`: not recorded — then it is never re-applied from the
 * log, only by the protocol that decided it).
 */
export interface StoredExclusion {
  readonly member: number
  readonly cut: number
  readonly wave: number | undefined
}

export const KEY_WIDTH = 11 // base 36: 36^11 ≈ 1.3e17 records or generations
export const keyOf = (prefix: string, n: number) =>
  `${prefix}${n.toString(36).padStart(KEY_WIDTH, '0')}`
export const MESSAGES = 'm/'
export const WATERMARKS = 'w/'
export const HIGH_WATER = 'h/'
export const EXCLUSIONS = 'x/'
/** Written by versions before 0.2: one overwritten watermark record. */
export const LEGACY_WATERMARKS = 'w'

export const encoder = new TextEncoder()
export const decoder = new TextDecoder()

export class LogReader {
  /** Highest watermark / high-water generation found. */
  watermarkGen = 0
  highWaterGen = 0
  /** Prefixes under which `readAll` met a damaged record. */
  readonly damagedIn = new Set<string>()

  constructor(
    private readonly storage: StableStorage,
    private readonly counters: Counters,
    private readonly log: Logger,
    private readonly where: string,
  ) {}

  /**
   * Every entry under `prefix`, skipping (deleting and counting) records that fail their
   * checksum; the scan resumes after each.
   */
  readAll(prefix: string, what: string): { key: string; value: Uint8Array }[] {
    const out: { key: string; value: Uint8Array }[] = []
    let start: string | undefined
    for (;;) {
      try {
        for (const entry of this.storage.scan({
          prefix,
          ...(start === undefined ? {} : { start }),
        })) {
          start = `${entry.key}\u0000`
          out.push(entry)
        }
        return out
      } catch (error) {
        if (!StorageCorruptedError.isInstance(error)) throw error
        const relative = error.key.slice(error.key.lastIndexOf(prefix))
        this.counters.inc('logCorruptedRecords')
        this.log.warn(`corrupted ${what} record dropped`, {
          key: error.key,
          detail: error.message,
        })
        this.storage.delete(relative)
        start = `${relative}\u0000`
        this.damagedIn.add(prefix)
      }
    }
  }

  loadWatermarks(memberCount: number): Watermarks | undefined {
    const records = this.readAll(WATERMARKS, 'watermark')
    let newest: { gen: number; watermarks: Watermarks } | undefined
    let unreadable = 0
    for (const { key, value } of records) {
      const gen = Number.parseInt(key.slice(WATERMARKS.length), 36)
      if (!Number.isSafeInteger(gen)) continue
      if (gen > this.watermarkGen) this.watermarkGen = gen
      const parsed = parseWatermarks(value, memberCount)
      if (parsed === undefined) {
        unreadable++
        continue
      }
      if (newest === undefined || gen > newest.gen) newest = { gen, watermarks: parsed }
    }
    if (records.length === 0 && !this.damagedIn.has(WATERMARKS)) {
      // A log written before watermark generations: one record, no floor.
      const legacy = this.readLegacyWatermarks(memberCount)
      if (legacy !== undefined) return legacy
      return undefined
    }
    if (newest === undefined) {
      throw new PsyncError(
        'LOG_CORRUPTED',
        `the pruning watermarks of ${this.where} are unreadable (${records.length + (this.damagedIn.has(WATERMARKS) ? 1 : 0)} record(s)): the log lacks a prefix it cannot describe. Restore this member by state transfer from a live peer, or delete its storage and let it rejoin as new`,
      )
    }
    if (unreadable > 0 || this.damagedIn.has(WATERMARKS)) {
      this.counters.inc('logUnreadableRecords', unreadable)
      this.log.warn('newest pruning watermarks unreadable; using the generation before', {
        group: this.where,
        generation: newest.gen,
      })
    }
    return newest.watermarks
  }

  private readLegacyWatermarks(memberCount: number): Watermarks | undefined {
    let raw: Uint8Array | undefined
    try {
      raw = this.storage.get(LEGACY_WATERMARKS)
    } catch (error) {
      if (!StorageCorruptedError.isInstance(error)) throw error
      raw = new Uint8Array(0)
    }
    if (raw === undefined) return undefined
    const parsed = parseWatermarks(raw, memberCount)
    if (parsed === undefined) {
      throw new PsyncError(
        'LOG_CORRUPTED',
        `the pruning watermark record of ${this.where} is unreadable: the log lacks a prefix it cannot describe. Restore this member by state transfer from a live peer, or delete its storage and let it rejoin as new`,
      )
    }
    return parsed
  }

  /**
   * The exclusion records: member index → cut. A record that is unreadable, names no member
   * of `memberCount` or no valid cut is counted and skipped (the protocol that decided it
   * re-applies it from its own state, as before these records existed).
   */
  loadExclusions(memberCount: number): StoredExclusion[] {
    const out: StoredExclusion[] = []
    for (const { key, value } of this.readAll(EXCLUSIONS, 'exclusion')) {
      const member = Number.parseInt(key.slice(EXCLUSIONS.length), 36)
      // "<cut> <wave>"
      const [cutText, waveText, ...more] = decoder.decode(value).split(' ')
      const cut = Number(cutText)
      const wave = waveText === undefined ? undefined : Number(waveText)
      if (
        !Number.isSafeInteger(member) ||
        member < 0 ||
        member >= memberCount ||
        !Number.isSafeInteger(cut) ||
        cut < 0 ||
        (wave !== undefined && (!Number.isSafeInteger(wave) || wave < 0)) ||
        more.length > 0
      ) {
        this.counters.inc('logUnreadableRecords')
        this.log.warn('unreadable exclusion record skipped', { group: this.where, key })
        continue
      }
      out.push({ member, cut, wave })
    }
    return out
  }

  loadHighWater(): { value: number; found: boolean; damaged: boolean } {
    let value = 0
    let found = false
    let damaged = this.damagedIn.has(HIGH_WATER)
    for (const { key, value: raw } of this.readAll(HIGH_WATER, 'high-water')) {
      const gen = Number.parseInt(key.slice(HIGH_WATER.length), 36)
      if (Number.isSafeInteger(gen) && gen > this.highWaterGen) this.highWaterGen = gen
      const seq = Number(decoder.decode(raw))
      if (!Number.isSafeInteger(seq) || seq < 0) {
        damaged = true
        this.counters.inc('logUnreadableRecords')
        continue
      }
      found = true
      if (seq > value) value = seq
    }
    damaged ||= this.damagedIn.has(HIGH_WATER)
    return { value, found, damaged }
  }
}

/** The watermarks in `raw`, or `undefined` when it is not a well-formed record for `n` members. */
function parseWatermarks(raw: Uint8Array, n: number): Watermarks | undefined {
  let value: unknown
  try {
    value = JSON.parse(decoder.decode(raw))
  } catch {
    return undefined
  }
  if (typeof value !== 'object' || value === null) return undefined
  const w = value as Record<string, unknown>
  const counts = (a: unknown, min: number): a is number[] =>
    Array.isArray(a) &&
    a.length === n &&
    a.every((x) => Number.isSafeInteger(x) && (x as number) >= min)
  if (!counts(w.prunedSeq, 0) || !counts(w.prunedDepth, -1)) return undefined
  if (!Array.isArray(w.prunedVc) || w.prunedVc.length !== n) return undefined
  if (!w.prunedVc.every((v) => counts(v, 0))) return undefined
  const prunedDepth = w.prunedDepth
  // Legacy records have no floor: every pruned message had a depth below max(depth) + 1.
  const floor =
    w.floor === undefined ? Math.max(-1, ...prunedDepth) + 1 : (w.floor as number | undefined)
  if (!Number.isSafeInteger(floor) || (floor as number) < 0) return undefined
  let boundary: [number, number, number, number[]][] | undefined
  if (w.boundary !== undefined) {
    if (!Array.isArray(w.boundary)) return undefined
    boundary = []
    for (const e of w.boundary as unknown[]) {
      if (!Array.isArray(e) || e.length !== 4) return undefined
      const [member, seq, depth, vc] = e as [unknown, unknown, unknown, unknown]
      if (
        !Number.isSafeInteger(member) ||
        (member as number) < 0 ||
        (member as number) >= n ||
        !Number.isSafeInteger(seq) ||
        (seq as number) < 1 ||
        !Number.isSafeInteger(depth) ||
        (depth as number) < 0 ||
        !counts(vc, 0)
      )
        return undefined
      boundary.push([member as number, seq as number, depth as number, vc])
    }
  }
  return {
    ...(boundary === undefined ? {} : { boundary }),
    prunedSeq: w.prunedSeq,
    prunedDepth,
    prunedVc: w.prunedVc as number[][],
    floor: floor as number,
    // Legacy records: a floor set by checkpointing or retainWaves, unknown; assume declared
    // (keeps more, never less).
    declared: w.declared !== false,
  }
}
