/**
 * The message log: every message of the conversation goes to stable storage in a
 * timer-driven group commit (one batch and one sync every `logEveryMs`), and the graph is
 * rebuilt from it after a restart.
 *
 * Own messages are write-ahead: they go on the wire only once the commit that holds them is
 * durable (`onDurable`). So a restarted member never forgets a message that anyone may have
 * received. Received messages may be lost from the local log by a crash; their senders
 * logged them, and the restart handshake fetches them again.
 *
 * Layout (under the session's storage scope):
 *   m/<position>  a DATA frame; the position is a fixed-width base-36 counter in log order, so
 *                 the log is append-only (cheap in every store)
 *   w/<gen>       the pruning watermarks of generation gen (JSON)
 *   h/<gen>       the own high-water mark: the highest own sequence number in a durable commit
 *
 * Invariants a crash must not break (the simulator tears or bit-flips one record of the last
 * unsynced batch; a real store can corrupt any record):
 * - Commits are serialized: a batch is written only after the one before it is durable (or
 *   failed and was put back in front of the queue), so an own message is never durable before
 *   the own messages it builds on. A failing batch or sync is counted and retried; nothing
 *   pending is dropped and nothing is reported durable that is not.
 * - The high-water mark goes in the same batch as the own messages it covers, so it covers
 *   every own message that ever went on the wire: a restarted member takes its next sequence
 *   number above it and never reuses an id, even if a record of its own was lost.
 * - Watermarks and high-water marks are append-only registers: generation g is written, and
 *   g − 2 deleted, in one batch. A torn write of g leaves g − 1 readable, and generation g − 1
 *   describes the log exactly: the messages generation g pruned are deleted only with
 *   generation g + 1.
 */
import {
  type Clock,
  type Counters,
  type Logger,
  type StableStorage,
  StorageCorruptedError,
  type StorageOp,
  type Timer,
} from '@consul/xkernel'
import { type DataFrame, dataFrameOf, decodeFrame, KIND_DATA } from './codec.js'
import type { GraphNode } from './context-graph.js'
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
}

const KEY_WIDTH = 11 // base 36: 36^11 ≈ 1.3e17 records or generations
const keyOf = (prefix: string, n: number) => `${prefix}${n.toString(36).padStart(KEY_WIDTH, '0')}`
const MESSAGES = 'm/'
const WATERMARKS = 'w/'
const HIGH_WATER = 'h/'
/** Written by versions before 0.2: one overwritten watermark record. */
const LEGACY_WATERMARKS = 'w'
/** Longest wait between two tries of a failing commit (ms). */
const MAX_RETRY_MS = 1_000

const encoder = new TextEncoder()
const decoder = new TextDecoder()

export class MessageLog {
  private pending: StorageOp[] = []
  private durableCallbacks: (() => void)[] = []
  private timer: Timer | undefined
  /**
   * A commit is in flight: commits are serialized. A flag set and cleared synchronously, not a
   * promise's settlement — a simulator runs timers without draining microtasks in between.
   */
  private committing = false
  private inFlight: Promise<void> = Promise.resolve()
  private closed = false
  private nextPosition = 0
  /** Highest own seq appended; what the next commit's high-water mark says. */
  private ownSeq = 0
  /** Highest own seq a written (pending or committed) high-water record covers. */
  private ownSeqRecorded = 0
  private watermarkGen = 0
  private highWaterGen = 0
  /** Keys of the messages the latest watermark generation pruned: deleted with the next one. */
  private deferredDeletes: string[] = []
  private failures = 0
  /** Prefixes under which `readAll` met a damaged record. */
  private readonly damagedIn = new Set<string>()

  constructor(
    private readonly storage: StableStorage,
    private readonly clock: Clock,
    private readonly logEveryMs: number,
    private readonly counters: Counters,
    private readonly log: Logger,
    private readonly where: string,
  ) {}

  /** Appends a received message (durable with the next commit). */
  append(node: GraphNode): void {
    const key = keyOf(MESSAGES, this.nextPosition++)
    this.pending.push({ type: 'put', key, value: dataFrameOf(node) })
    node.logged = true
    node.logKey = key
    this.schedule()
  }

  /** Appends an own message; `onDurable` runs once the commit holding it is durable. */
  appendOwn(node: GraphNode, onDurable: () => void): void {
    this.append(node)
    if (node.seq > this.ownSeq) this.ownSeq = node.seq
    this.durableCallbacks.push(onDurable)
  }

  /**
   * Records new watermarks in the next commit, and deletes the messages the previous
   * generation pruned (those of this one go with the next: see the invariants above).
   */
  prune(nodes: readonly GraphNode[], watermarks: Watermarks): void {
    for (const key of this.deferredDeletes) this.pending.push({ type: 'del', key })
    this.deferredDeletes = []
    for (const node of nodes) if (node.logKey !== undefined) this.deferredDeletes.push(node.logKey)
    const gen = ++this.watermarkGen
    this.pending.push({
      type: 'put',
      key: keyOf(WATERMARKS, gen),
      value: encoder.encode(JSON.stringify(watermarks)),
    })
    if (gen >= 2) this.pending.push({ type: 'del', key: keyOf(WATERMARKS, gen - 2) })
    this.schedule()
  }

  private schedule(delayMs = this.logEveryMs): void {
    if (this.timer !== undefined || this.closed) return
    this.timer = this.clock.setTimer(delayMs, () => {
      this.timer = undefined
      void this.commit()
    })
  }

  /**
   * Writes everything pending in one batch and syncs; resolves when durable, or when the
   * try failed (counted, logged, and queued again in front of what came meanwhile). Never
   * rejects. Asked for while a commit is in flight, it runs right after that one.
   */
  commit(): Promise<void> {
    if (this.committing) {
      this.again = true
      return this.inFlight
    }
    if (this.pending.length === 0 && this.durableCallbacks.length === 0) return Promise.resolve()
    this.committing = true
    this.inFlight = this.write()
    return this.inFlight
  }

  /** A commit was asked for while one was in flight: run it right after. */
  private again = false

  private async write(): Promise<void> {
    if (this.ownSeq > this.ownSeqRecorded) {
      const gen = ++this.highWaterGen
      this.pending.push({
        type: 'put',
        key: keyOf(HIGH_WATER, gen),
        value: encoder.encode(String(this.ownSeq)),
      })
      if (gen >= 2) this.pending.push({ type: 'del', key: keyOf(HIGH_WATER, gen - 2) })
      this.ownSeqRecorded = this.ownSeq
    }
    const ops = this.pending
    const callbacks = this.durableCallbacks
    this.pending = []
    this.durableCallbacks = []
    try {
      this.storage.batch(ops)
      this.counters.inc('logCommits')
      this.counters.inc('logRecords', ops.length)
      await this.storage.sync()
    } catch (error) {
      this.committing = false
      this.again = false
      this.pending = ops.concat(this.pending)
      this.durableCallbacks = callbacks.concat(this.durableCallbacks)
      this.failures++
      this.counters.inc('logCommitFailures')
      const retryMs = Math.min(MAX_RETRY_MS, this.logEveryMs * 2 ** Math.min(this.failures, 16))
      this.log.error('log commit failed; own messages wait until it succeeds', {
        group: this.where,
        records: ops.length,
        failures: this.failures,
        retryMs,
        error: String(error),
      })
      this.schedule(Math.max(retryMs, 1))
      return
    }
    this.committing = false
    this.failures = 0
    for (const callback of callbacks) callback()
    const again = this.again
    this.again = false
    if (this.pending.length > 0 || this.durableCallbacks.length > 0)
      this.schedule(again ? 0 : this.logEveryMs)
  }

  /** Flushes what is pending (a failure is logged, not thrown) and stops the timer. */
  async close(): Promise<void> {
    this.timer?.cancel()
    this.timer = undefined
    this.closed = true
    await this.inFlight
    await this.commit()
  }

  /**
   * Reads the log back. A message record that fails its checksum is deleted and counted (a
   * write torn by the crash, or a damaged one: a lost own message is fetched back from peers,
   * and the high-water mark keeps its id from being reused); the scan goes on after it.
   * Throws `PsyncError('LOG_CORRUPTED')` when watermarks exist but none can be read: the log
   * is missing a prefix it cannot describe, and the member must recover by state transfer.
   */
  load(memberCount: number, self: number): LoadedLog {
    const watermarks = this.loadWatermarks(memberCount)
    const highWater = this.loadHighWater()
    const frames: (DataFrame & { logKey: string })[] = []
    let ownMax = 0
    let messageDamaged = false
    for (const entry of this.readAll(MESSAGES, 'message')) {
      const position = Number.parseInt(entry.key.slice(MESSAGES.length), 36)
      if (Number.isSafeInteger(position) && position >= this.nextPosition)
        this.nextPosition = position + 1
      let frame: ReturnType<typeof decodeFrame>
      try {
        frame = decodeFrame(entry.value, memberCount)
      } catch (error) {
        this.counters.inc('logUnreadableRecords')
        this.log.warn('unreadable log record dropped', { key: entry.key, error: String(error) })
        this.storage.delete(entry.key)
        messageDamaged = true
        continue
      }
      if (frame.kind !== KIND_DATA) continue
      if (frame.seq <= (watermarks?.prunedSeq[frame.sender] ?? 0)) {
        // Pruned by the newest watermarks; its delete went with a later generation that the
        // crash took away.
        this.deferredDeletes.push(entry.key)
        continue
      }
      frames.push({ ...frame, payload: frame.payload.slice(), logKey: entry.key })
      if (frame.sender === self && frame.seq > ownMax) ownMax = frame.seq
    }
    // The next commit records a high-water mark again if the log holds more than the last one.
    this.ownSeqRecorded = highWater.value
    this.ownSeq = Math.max(highWater.value, ownMax)
    return {
      watermarks,
      frames,
      ownHighWater: highWater.value,
      // A damaged high-water record alone loses nothing: the own messages of its batch are in
      // the log (or were never synced, so never sent). Only with a message record damaged too
      // could an own message that went out be forgotten by both.
      ownHighWaterCertain:
        !(highWater.damaged && (messageDamaged || this.damagedIn.has(MESSAGES))) &&
        (highWater.found || ownMax === 0),
    }
  }

  /**
   * Every entry under `prefix`, skipping (deleting and counting) records that fail their
   * checksum; the scan resumes after each.
   */
  private readAll(prefix: string, what: string): { key: string; value: Uint8Array }[] {
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

  private loadWatermarks(memberCount: number): Watermarks | undefined {
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

  private loadHighWater(): { value: number; found: boolean; damaged: boolean } {
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
  return {
    prunedSeq: w.prunedSeq,
    prunedDepth,
    prunedVc: w.prunedVc as number[][],
    floor: floor as number,
    // Legacy records: a floor set by checkpointing or retainWaves, unknown; assume declared
    // (keeps more, never less).
    declared: w.declared !== false,
  }
}
