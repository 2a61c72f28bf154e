/**
 * The message log: every message of the conversation goes to stable storage in a
 * timer-driven group commit (one batch and one sync every `logEveryMs`), and the graph is
 * rebuilt from it after a restart.
 *
 * Own messages are write-ahead: they go on the wire only once the commit that holds them is
 * durable (`onDurable`). So a restarted member never forgets a message that anyone may have
 * received, and never reuses a sequence number for different content. Received messages
 * may be lost from the local log by a crash; their senders logged them, and the restart
 * handshake fetches them again.
 *
 * Layout (under the session's storage scope): `m/<position>` → the DATA frame, where the
 * position is a fixed-width base-36 counter in log order, so the log is append-only (cheap in
 * every store); `w` → the pruning watermarks (JSON). Pruned messages are deleted in the same
 * batch that moves the watermarks.
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

export interface Watermarks {
  readonly prunedSeq: readonly number[]
  readonly prunedDepth: readonly number[]
  readonly prunedVc: readonly (readonly number[])[]
  /** The first wave not yet complete when the watermarks were written. */
  readonly nextWave: number
}

const KEY_WIDTH = 11 // base 36: 36^11 ≈ 1.3e17 records
const messageKey = (position: number) => `m/${position.toString(36).padStart(KEY_WIDTH, '0')}`
const encoder = new TextEncoder()
const decoder = new TextDecoder()

export class MessageLog {
  private pending: StorageOp[] = []
  private durableCallbacks: (() => void)[] = []
  private timer: Timer | undefined
  private closed = false
  private nextPosition = 0

  constructor(
    private readonly storage: StableStorage,
    private readonly clock: Clock,
    private readonly logEveryMs: number,
    private readonly counters: Counters,
    private readonly log: Logger,
  ) {}

  /** Appends a received message (durable with the next commit). */
  append(node: GraphNode): void {
    const key = messageKey(this.nextPosition++)
    this.pending.push({
      type: 'put',
      key,
      value: dataFrameOf(node),
    })
    node.logged = true
    node.logKey = key
    this.schedule()
  }

  /** Appends an own message; `onDurable` runs once the commit holding it is durable. */
  appendOwn(node: GraphNode, onDurable: () => void): void {
    this.append(node)
    this.durableCallbacks.push(onDurable)
  }

  /** Deletes pruned messages and records the new watermarks in the next commit. */
  prune(nodes: readonly GraphNode[], watermarks: Watermarks): void {
    for (const node of nodes)
      if (node.logKey !== undefined) this.pending.push({ type: 'del', key: node.logKey })
    this.pending.push({ type: 'put', key: 'w', value: encoder.encode(JSON.stringify(watermarks)) })
    this.schedule()
  }

  private schedule(): void {
    if (this.timer !== undefined || this.closed) return
    this.timer = this.clock.setTimer(this.logEveryMs, () => {
      this.timer = undefined
      void this.commit()
    })
  }

  /** Writes everything pending in one batch and syncs; resolves when durable. */
  async commit(): Promise<void> {
    if (this.pending.length === 0 && this.durableCallbacks.length === 0) return
    const ops = this.pending
    const callbacks = this.durableCallbacks
    this.pending = []
    this.durableCallbacks = []
    this.storage.batch(ops)
    this.counters.inc('logCommits')
    this.counters.inc('logRecords', ops.length)
    await this.storage.sync()
    for (const callback of callbacks) callback()
  }

  /** Flushes and stops the timer. */
  async close(): Promise<void> {
    this.timer?.cancel()
    this.timer = undefined
    await this.commit()
    this.closed = true
  }

  /**
   * Reads the log back: watermarks and every message frame. A record that fails its
   * checksum (a write torn by the crash: never synced, so never sent) is deleted and counted;
   * the scan goes on after it.
   */
  load(memberCount: number): {
    watermarks: Watermarks | undefined
    frames: (DataFrame & { logKey: string })[]
  } {
    let watermarks: Watermarks | undefined
    try {
      const raw = this.storage.get('w')
      if (raw !== undefined) watermarks = JSON.parse(decoder.decode(raw)) as Watermarks
    } catch (error) {
      this.counters.inc('logUnreadableRecords')
      this.log.warn('unreadable pruning watermarks; starting from none', { error: String(error) })
    }
    const frames: (DataFrame & { logKey: string })[] = []
    let start: string | undefined
    for (;;) {
      try {
        for (const entry of this.storage.scan({
          prefix: 'm/',
          ...(start === undefined ? {} : { start }),
        })) {
          start = `${entry.key}\u0000`
          try {
            const frame = decodeFrame(entry.value, memberCount)
            if (frame.kind === KIND_DATA)
              frames.push({ ...frame, payload: frame.payload.slice(), logKey: entry.key })
            const position = Number.parseInt(entry.key.slice(2), 36)
            if (Number.isSafeInteger(position) && position >= this.nextPosition)
              this.nextPosition = position + 1
          } catch (error) {
            this.counters.inc('logUnreadableRecords')
            this.log.warn('unreadable log record dropped', { key: entry.key, error: String(error) })
            this.storage.delete(entry.key)
          }
        }
        return { watermarks, frames }
      } catch (error) {
        if (!(error instanceof StorageCorruptedError)) throw error
        const relative = error.key.slice(error.key.lastIndexOf('m/'))
        this.counters.inc('logCorruptedRecords')
        this.log.warn('corrupted log record dropped', { key: error.key, detail: error.message })
        this.storage.delete(relative)
        start = `${relative}\u0000`
      }
    }
  }
}
