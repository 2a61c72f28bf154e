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
 *   x/<member>    an exclusion applied here: "<cut> <wave>", the member's cut and the first
 *                 incomplete wave when it was applied (written once, never deleted — an
 *                 exclusion is for good in a conversation)
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
 * - An exclusion is recorded in the commit after it is applied, so before any pruning that
 *   follows it: once the messages that decided it may be gone from the log, the cut is not.
 *   A restart re-applies one decided below the prune floor before rebuilding the graph, even
 *   when no checkpoint of the protocol that decided it survived (`restart.ts`).
 * - Watermarks and high-water marks are append-only registers: generation g is written, and
 *   g − 2 deleted, in one batch. A torn write of g leaves g − 1 readable, and generation g − 1
 *   describes the log exactly: the messages generation g pruned are deleted only with
 *   generation g + 1.
 */
import type { Clock, Counters, Logger, StableStorage, StorageOp, Timer } from '@consul/xkernel'
import { type DataFrame, dataFrameOf, decodeFrame, KIND_DATA } from './codec.js'
import type { GraphNode } from './context-graph.js'
import {
  EXCLUSIONS,
  encoder,
  HIGH_WATER,
  keyOf,
  type LoadedLog,
  LogReader,
  MESSAGES,
  WATERMARKS,
  type Watermarks,
} from './log-reader.js'

export type { LoadedLog, Watermarks }

/** Longest wait between two tries of a failing commit (ms). */
const MAX_RETRY_MS = 1_000

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
  private readonly reader: LogReader
  /** Keys of the messages the latest watermark generation pruned: deleted with the next one. */
  private deferredDeletes: string[] = []
  private failures = 0

  constructor(
    private readonly storage: StableStorage,
    private readonly clock: Clock,
    private readonly logEveryMs: number,
    private readonly counters: Counters,
    private readonly log: Logger,
    private readonly where: string,
  ) {
    this.reader = new LogReader(storage, counters, log, where)
  }

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
   * Records an exclusion applied here (durable with the next commit), with the first wave not
   * yet complete when it was applied.
   */
  recordExclusion(member: number, cut: number, wave: number): void {
    this.pending.push({
      type: 'put',
      key: keyOf(EXCLUSIONS, member),
      value: encoder.encode(`${cut} ${wave}`),
    })
    this.schedule()
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
    const reader = this.reader
    const watermarks = reader.loadWatermarks(memberCount)
    const highWater = reader.loadHighWater()
    const exclusions = reader.loadExclusions(memberCount)
    this.watermarkGen = reader.watermarkGen
    this.highWaterGen = reader.highWaterGen
    const frames: (DataFrame & { logKey: string })[] = []
    let ownMax = 0
    let messageDamaged = false
    for (const entry of reader.readAll(MESSAGES, 'message')) {
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
      exclusions,
      frames,
      ownHighWater: highWater.value,
      // A damaged high-water record alone loses nothing: the own messages of its batch are in
      // the log (or were never synced, so never sent). Only with a message record damaged too
      // could an own message that went out be forgotten by both.
      ownHighWaterCertain:
        !(highWater.damaged && (messageDamaged || reader.damagedIn.has(MESSAGES))) &&
        (highWater.found || ownMax === 0),
    }
  }
}
