/**
 * Building blocks for Order protocols: the machinery every Order on Psync needs apart from
 * its ordering rule. `@consul/order-total`, `@consul/order-semantic` and the Lamport example
 * use all three; another Order may take any of them.
 *
 * - `CommandBatcher`: `submit()` queues commands; those submitted in one event-loop turn go
 *   out in one Psync message (at most `maxBatch` commands / `maxBatchBytes` bytes, sent early
 *   when full), and each submit resolves at its delivery level: `'agreed'` once the Order
 *   delivers its command here, `'safe'` (the default) once it is delivered here and its
 *   message is stable (`stableUpTo`, fed from `psync.onStable`).
 * - `Acknowledger`: a member that received a command and has sent nothing since sends an
 *   empty acknowledgement `ackDelayMs` later, so the command's wave (or clock) can advance.
 * - `WaveSequence`: the never-skip-a-wave rule — tells a covered wave from the expected one
 *   and from a gap, after which the Order must stop.
 * - `resolveOrderOptions`: defaults and validation of the options above.
 *
 * They own no ordering decision and no wire format: the Order frames its messages in the
 * `send` / `sendAck` callbacks and says when a command is delivered.
 */
import type { Clock, Timer } from './clock.js'
import type { Counters } from './counters.js'
import type { Logger } from './logger.js'
import {
  commandId,
  type DeliveryLevel,
  type OrderedCommand,
  type OrderPosition,
  type SubmitOptions,
} from './order-spec.js'
import type { SessionEvents } from './protocol.js'
import type { MessageId, PsyncMessage } from './psync-control.js'

/** Builds the Order's own error class for the codes the building blocks report. */
export type OrderErrorFactory = (code: 'INVALID_ARGUMENT' | 'CLOSED', message: string) => Error

// ---- options --------------------------------------------------------------------------------

/** The options every Order built on these blocks shares (all optional). */
export interface OrderOptions {
  /** Empty-acknowledgement delay after receiving a command (ms, ≥ 0). Default 1. */
  readonly ackDelayMs?: number
  /** Most commands per Psync message (integer ≥ 1). Default 256. */
  readonly maxBatch?: number
  /** Most command bytes per Psync message (integer ≥ 1). Default 64 KiB. */
  readonly maxBatchBytes?: number
}

export interface ResolvedOrderOptions {
  readonly ackDelayMs: number
  readonly maxBatch: number
  readonly maxBatchBytes: number
}

/** How one numeric option is checked. */
export interface NumberOptionSpec {
  readonly fallback: number
  readonly min: number
  readonly integer?: boolean
}

/**
 * `options[name]` (or `spec.fallback` when absent), checked to be a finite number ≥
 * `spec.min` (and an integer if `spec.integer`); otherwise throws
 * `error('INVALID_ARGUMENT', '<label> <name> must be …, got …')`.
 */
export function numberOption<K extends string>(
  options: { readonly [key in K]?: unknown },
  name: K,
  spec: NumberOptionSpec,
  error: OrderErrorFactory,
  label = 'order option',
): number {
  const value = options[name] ?? spec.fallback
  const integer = spec.integer === true
  if (
    typeof value !== 'number' ||
    !Number.isFinite(value) ||
    value < spec.min ||
    (integer && !Number.isInteger(value))
  ) {
    throw error(
      'INVALID_ARGUMENT',
      `${label} ${name} must be ${integer ? 'an integer' : 'a number'} >= ${spec.min}, got ${String(value)}`,
    )
  }
  return value
}

/**
 * `ackDelayMs` (default 1, ≥ 0), `maxBatch` (default 256, integer ≥ 1) and `maxBatchBytes`
 * (default 65,536, integer ≥ 1), checked in that order; the first bad one throws
 * `error('INVALID_ARGUMENT', …)`. `label` starts the message (default `'order option'`).
 */
export function resolveOrderOptions(
  options: OrderOptions,
  error: OrderErrorFactory,
  label = 'order option',
): ResolvedOrderOptions {
  return {
    ackDelayMs: numberOption(options, 'ackDelayMs', { fallback: 1, min: 0 }, error, label),
    maxBatch: numberOption(
      options,
      'maxBatch',
      { fallback: 256, min: 1, integer: true },
      error,
      label,
    ),
    maxBatchBytes: numberOption(
      options,
      'maxBatchBytes',
      { fallback: 64 * 1024, min: 1, integer: true },
      error,
      label,
    ),
  }
}

// ---- batching -------------------------------------------------------------------------------

/** What a session context offers that the batcher uses (a `SessionContext` is one). */
export interface CommandBatcherContext {
  /** The session clock (the flush timer runs on it). */
  readonly clock: Clock
  /** Counts `submitted` (commands accepted) and `batches` (messages sent). */
  readonly counters: Counters
  /** Raises `trace.sent` (layer `order`) for each command sent, when anyone listens. */
  readonly events: Pick<SessionEvents, 'emit' | 'has'>
  readonly group: { readonly port: string }
}

/** A command waiting in the queue or in the batch being sent. */
export interface QueuedCommand<T> {
  /** The batcher's own copy of the submitted bytes. */
  readonly command: Uint8Array
  /** What `tag` computed for it at submit. */
  readonly tag: T
}

export type CommandBatcherOptions<T> = {
  readonly maxBatch: number
  readonly maxBatchBytes: number
  /** Builds the Order's errors (`INVALID_ARGUMENT` and `CLOSED` rejections of `submit`). */
  readonly error: OrderErrorFactory
  /**
   * Sends one batch (in the Order's framing, through `psync.send`) and returns the message
   * that carries it (a `PsyncMessage`, or its id and seq); command `i` gets the id
   * `commandId(message, i)`. If it throws, the batch's submits reject with that error.
   */
  readonly send: (batch: readonly QueuedCommand<T>[]) => {
    readonly id: MessageId
    readonly seq: number
  }
  /** Runs after each batch went out and its commands are tracked. */
  readonly afterSend?: () => void
} & (undefined extends T
  ? {
      /** Computes a command's tag (see below); absent, tags are `undefined`. */
      readonly tag?: (command: Uint8Array) => T
    }
  : {
      /**
       * Computes what the Order keeps with each command (order-semantic: its class rank),
       * from the batcher's copy, after the common checks. Throwing rejects the submit with
       * that error, and nothing is queued.
       */
      readonly tag: (command: Uint8Array) => T
    })

interface Pending<T> extends QueuedCommand<T> {
  readonly level: DeliveryLevel
  readonly resolve: (command: OrderedCommand) => void
  readonly reject: (error: Error) => void
  /** Delivered here, waiting for stability (`'safe'`). */
  delivered?: OrderedCommand
}

/** One sent batch whose deliveries are awaited: its submits' settlers, by command index. */
interface SentBatch<T> {
  readonly message: MessageId
  readonly seq: number
  readonly pending: (Pending<T> | undefined)[]
  /** How many of `pending` are still awaited. */
  left: number
  /** Its message is stable: a delivery settles a `'safe'` submit at once. */
  stable: boolean
}

/**
 * The batcher's copies of submitted commands are views into shared slabs of this size: in
 * V8 a fresh `Uint8Array` over 64 bytes gets its own off-heap buffer, which costs about as
 * much as everything else an Order does for a command (≈ 0.8 µs against ≈ 0.05 µs for a
 * view). A slab lives until the last command copied into it is delivered (or dropped).
 */
const SLAB_BYTES = 64 * 1024
/** Commands larger than this get their own copy (they would waste a slab's tail). */
const SLAB_MAX_COPY = SLAB_BYTES / 16

/** The index of command `id` (`<message>/<index>`) of `message`, or -1. */
function commandIndex(id: string, message: MessageId): number {
  if (id.length <= message.length + 1 || id.charCodeAt(message.length) !== 0x2f) return -1
  const index = Number(id.slice(message.length + 1))
  return Number.isInteger(index) && index >= 0 ? index : -1
}

/**
 * The submit side of an Order. `submit(command)` checks the command, copies it and queues
 * it; the queue goes out as one batch through `send` on a 0 ms timer of the session clock —
 * so everything submitted in one event-loop turn travels together — or at once when it holds
 * `maxBatch` commands, and before a command that would take it over `maxBatchBytes`. The
 * submit's promise resolves when the Order reports the command delivered here
 * (`take(id)` / `delivered(command)`) and rejects if the batcher closes first.
 *
 * The caller may reuse or change its buffer as soon as `submit` returns: the batcher keeps
 * its own copy.
 *
 * Rejections (through `error`): `INVALID_ARGUMENT` for a command that is not a `Uint8Array`
 * or is larger than `maxBatchBytes`, `CLOSED` after `close()`.
 */
export class CommandBatcher<T = undefined> {
  private queue: Pending<T>[] = []
  private queuedBytes = 0
  /** Sent batches still awaited, by the id of the Psync message that carried them. */
  private readonly waiting = new Map<MessageId, SentBatch<T>>()
  /** Sent batches with a 'safe' submit not yet stable, in seq order (stability comes in seq order). */
  private readonly bySeq: SentBatch<T>[] = []
  private bySeqHead = 0
  /** Own messages up to this seq are stable. */
  private stableSeq = 0
  private waitingCommands = 0
  private timer: Timer | undefined
  private closed = false
  private failure: Error | undefined
  private slab = new Uint8Array(0)
  private slabAt = 0

  constructor(
    private readonly ctx: CommandBatcherContext,
    private readonly options: CommandBatcherOptions<T>,
  ) {}

  /** Commands queued and not yet sent. */
  get queued(): number {
    return this.queue.length
  }

  /** Commands sent whose delivery here is still awaited. */
  get awaiting(): number {
    return this.waitingCommands
  }

  submit(command: Uint8Array, options?: SubmitOptions): Promise<OrderedCommand> {
    const { error, maxBatch, maxBatchBytes } = this.options
    if (!(command instanceof Uint8Array))
      return Promise.reject(error('INVALID_ARGUMENT', 'submit() takes the command as a Uint8Array'))
    const level = levelOf(options)
    if (level === undefined) {
      return Promise.reject(
        error(
          'INVALID_ARGUMENT',
          `submit(command, options): options must be { level?: 'agreed' | 'safe' }, got ${describe(options)}`,
        ),
      )
    }
    if (this.failure !== undefined) return Promise.reject(this.failure)
    if (this.closed)
      return Promise.reject(error('CLOSED', `group ${this.ctx.group.port} is closed`))
    if (command.length > maxBatchBytes) {
      return Promise.reject(
        error(
          'INVALID_ARGUMENT',
          `command of ${command.length} bytes exceeds maxBatchBytes (${maxBatchBytes})`,
        ),
      )
    }
    const copy = this.copyOf(command)
    // The options type makes `tag` required unless T admits undefined.
    const tagOf = (this.options as { readonly tag?: (command: Uint8Array) => T }).tag
    let tag: T
    try {
      tag = tagOf === undefined ? (undefined as T) : tagOf(copy)
    } catch (problem) {
      return Promise.reject(problem)
    }
    return new Promise<OrderedCommand>((resolve, reject) => {
      if (this.queuedBytes + copy.length > maxBatchBytes) this.flush()
      this.queue.push({ command: copy, tag, level, resolve, reject })
      this.queuedBytes += copy.length
      this.ctx.counters.inc('submitted')
      if (this.queue.length >= maxBatch) this.flush()
      else this.timer ??= this.ctx.clock.setTimer(0, () => this.flush())
    })
  }

  private copyOf(command: Uint8Array): Uint8Array {
    const n = command.length
    if (n > SLAB_MAX_COPY) return command.slice()
    if (this.slabAt + n > this.slab.length) {
      this.slab = new Uint8Array(SLAB_BYTES)
      this.slabAt = 0
    }
    const copy = this.slab.subarray(this.slabAt, this.slabAt + n)
    copy.set(command)
    this.slabAt += n
    return copy
  }

  /**
   * Sends the queued commands now, in one batch. Returns whether a batch went out: a sent
   * batch acknowledges too, so an `Acknowledger` given `flush: () => batcher.flush()` sends it
   * instead of an empty acknowledgement. When `send` throws, the batch's submits reject with
   * that error and `flush` returns false — nothing went out, so an acknowledgement is still
   * owed.
   */
  flush(): boolean {
    this.timer?.cancel()
    this.timer = undefined
    if (this.queue.length === 0 || this.closed) return false
    const batch = this.queue
    this.queue = []
    this.queuedBytes = 0
    let message: MessageId
    let seq: number
    try {
      const sent = this.options.send(batch)
      message = sent.id
      seq = sent.seq
    } catch (problem) {
      // e.g. a batch over Psync's maxPayloadBytes: the submitters hear of it.
      for (const p of batch)
        p.reject(problem instanceof Error ? problem : new Error(String(problem)))
      return false
    }
    this.ctx.counters.inc('batches')
    const sent: SentBatch<T> = {
      message,
      seq,
      pending: batch,
      left: batch.length,
      stable: seq <= this.stableSeq,
    }
    this.waiting.set(message, sent)
    // Only batches with a 'safe' submit wait for stability (an Order that never feeds
    // stableUpTo, with 'agreed' submits only, keeps nothing here).
    if (!sent.stable && batch.some((p) => p.level === 'safe')) this.bySeq.push(sent)
    this.waitingCommands += batch.length
    const { events, group } = this.ctx
    if (events.has('trace.sent')) {
      for (let i = 0; i < batch.length; i++)
        events.emit('trace.sent', { group: group.port, layer: 'order', id: commandId(message, i) })
    }
    this.options.afterSend?.()
    return true
  }

  /**
   * The Order delivered command `id` here: returns what settles its submit — call it after
   * the delivery handlers, or before — or `undefined` if it is not an own command awaited
   * here. A `'safe'` submit whose message is not stable yet settles later, in `stableUpTo`
   * (the returned function then only records the delivery). `delivered` does both steps at
   * once.
   */
  take(id: string): ((command: OrderedCommand) => void) | undefined {
    const slash = id.lastIndexOf('/')
    if (slash < 0) return undefined
    return this.takeFrom(id.slice(0, slash), id)
  }

  /** The Order delivered `command` here: settles its submit, if it is an awaited own one. */
  delivered(command: OrderedCommand): void {
    this.takeFrom(command.message, command.id)?.(command)
  }

  /**
   * `delivered(command)` for the `index`-th command of message `message`, without parsing the
   * command id: the fast path for an Order that knows both (call it for own messages only;
   * others' are never awaited).
   */
  deliveredAt(message: MessageId, index: number, command: OrderedCommand): void {
    const sent = this.waiting.get(message)
    if (sent === undefined) return
    this.settle(sent, index)?.(command)
  }

  /**
   * Own messages up to `seq` are stable (`psync.onStable` for this member): settles every
   * `'safe'` submit of theirs already delivered here; later deliveries settle at once.
   */
  stableUpTo(seq: number): void {
    if (seq <= this.stableSeq) return
    this.stableSeq = seq
    while (this.bySeqHead < this.bySeq.length) {
      const sent = this.bySeq[this.bySeqHead]!
      if (sent.seq > seq) break
      this.bySeqHead++
      sent.stable = true
      for (let i = 0; i < sent.pending.length; i++) {
        const p = sent.pending[i]
        if (p?.delivered === undefined) continue
        const command = p.delivered
        this.forget(sent, i)
        p.resolve(command)
      }
    }
    if (this.bySeqHead > 1024 && this.bySeqHead * 2 > this.bySeq.length) {
      this.bySeq.splice(0, this.bySeqHead)
      this.bySeqHead = 0
    }
  }

  private takeFrom(
    message: MessageId,
    id: string,
  ): ((command: OrderedCommand) => void) | undefined {
    const sent = this.waiting.get(message)
    if (sent === undefined) return undefined
    return this.settle(sent, commandIndex(id, message))
  }

  private settle(
    sent: SentBatch<T>,
    index: number,
  ): ((command: OrderedCommand) => void) | undefined {
    const pending = index < 0 ? undefined : sent.pending[index]
    if (pending === undefined || pending.delivered !== undefined) return undefined
    if (pending.level === 'safe' && !sent.stable) {
      // Delivered here; settles once its message is stable (or now, if it became so since).
      return (command) => {
        if (sent.pending[index] !== pending) return
        if (!sent.stable) {
          pending.delivered = command
          return
        }
        this.forget(sent, index)
        pending.resolve(command)
      }
    }
    this.forget(sent, index)
    return pending.resolve
  }

  private forget(sent: SentBatch<T>, index: number): void {
    sent.pending[index] = undefined
    this.waitingCommands--
    if (--sent.left === 0) this.waiting.delete(sent.message)
  }

  /**
   * The Order stopped (e.g. a gap in the wave sequence): rejects every queued and awaited
   * submit with `error`, and every later one. Idempotent.
   */
  fail(error: Error): void {
    if (this.failure !== undefined) return
    this.failure = error
    this.rejectAll(error)
  }

  /**
   * Rejects every queued and awaited submit with
   * `error('CLOSED', 'group <port> closed before the command was delivered')` and refuses
   * later ones. Idempotent.
   */
  close(): void {
    this.closed = true
    this.timer?.cancel()
    this.timer = undefined
    this.rejectAll(
      this.options.error(
        'CLOSED',
        `group ${this.ctx.group.port} closed before the command was delivered`,
      ),
    )
  }

  private rejectAll(error: Error): void {
    this.timer?.cancel()
    this.timer = undefined
    const queued = this.queue
    const sent = [...this.waiting.values()]
    this.queue = []
    this.queuedBytes = 0
    this.waiting.clear()
    this.bySeq.length = 0
    this.bySeqHead = 0
    this.waitingCommands = 0
    for (const p of queued) p.reject(error)
    for (const batch of sent) for (const p of batch.pending) p?.reject(error)
  }
}

/** The level `options` asks for, or `undefined` when they are not valid submit options. */
function levelOf(options: SubmitOptions | undefined): DeliveryLevel | undefined {
  if (options === undefined) return 'safe'
  if (typeof options !== 'object' || options === null) return undefined
  const level = (options as { level?: unknown }).level
  if (level === undefined) return 'safe'
  return level === 'safe' || level === 'agreed' ? level : undefined
}

function describe(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return String(value)
  }
}

// ---- acknowledgements -----------------------------------------------------------------------

export interface AcknowledgerContext {
  /** The session clock (the acknowledgement timer runs on it). */
  readonly clock: Clock
  /** Counts `acks` (empty acknowledgements sent). */
  readonly counters: Counters
}

export interface AcknowledgerOptions {
  readonly ackDelayMs: number
  /**
   * Sends one empty acknowledgement, in the Order's framing (an empty payload, or e.g. a
   * stamp and no commands). Like every send of the Order, it must call `sent()`.
   */
  readonly sendAck: () => void
  /**
   * Sends the queued commands instead, if there are any, and says whether there were:
   * usually `() => batcher.flush()`.
   */
  readonly flush?: () => boolean
  /** Another reason an acknowledgement is owed besides `owe()` (checked when it matters). */
  readonly owes?: () => boolean
}

/**
 * The acknowledgement rule. Every member must pass each wave (or each command's timestamp)
 * before anyone delivers it, so a member that received a command from another member and has
 * sent nothing since sends an empty acknowledgement `ackDelayMs` later. Any send clears the
 * need; acknowledgements are never acknowledged, so an idle group falls silent.
 *
 * The Order calls `received()` after a command-bearing message from another member (never
 * for an acknowledgement), and `sent()` after each of its own sends, batches and
 * acknowledgements alike. When the timer fires and an acknowledgement is still owed, queued
 * commands go instead (`flush`), otherwise `sendAck()` runs and `acks` is counted. A send
 * that throws (Psync refuses to send for a moment, e.g. `NOT_READY` right after a restart) is
 * counted (`ackFailures`) and tried again later: it runs from a timer, where a throw would
 * end the process.
 */
export class Acknowledger {
  private needed = false
  private timer: Timer | undefined
  private closed = false

  constructor(
    private readonly ctx: AcknowledgerContext,
    private readonly options: AcknowledgerOptions,
  ) {}

  /** Whether an acknowledgement is owed now. */
  get owed(): boolean {
    return this.needed || this.options.owes?.() === true
  }

  /** A command from another member arrived: acknowledge it unless something goes out first. */
  received(): void {
    this.owe()
    this.schedule()
  }

  /** Marks an acknowledgement as owed without arming the timer (`schedule()` arms it). */
  owe(): void {
    this.needed = true
  }

  /** Arms the timer if an acknowledgement is owed and it is not already armed. */
  schedule(): void {
    if (this.timer !== undefined || this.closed || !this.owed) return
    this.timer = this.ctx.clock.setTimer(this.retryMs ?? this.options.ackDelayMs, () => {
      this.timer = undefined
      if (this.closed || !this.owed) return
      try {
        if (this.options.flush?.() === true) {
          this.retryMs = undefined
          return
        }
        this.options.sendAck()
      } catch {
        this.ctx.counters.inc('ackFailures')
        this.retryMs = Math.min(1_000, Math.max(1, (this.retryMs ?? this.options.ackDelayMs) * 2))
        this.schedule()
        return
      }
      this.retryMs = undefined
      this.ctx.counters.inc('acks')
    })
  }

  /** Set while sends fail: the next try waits this long (doubling up to a second). */
  private retryMs: number | undefined

  /** The Order sent something: that acknowledges everything received so far. */
  sent(): void {
    this.needed = false
  }

  /** Cancels the timer; nothing is sent afterwards. Idempotent. */
  close(): void {
    this.closed = true
    this.timer?.cancel()
    this.timer = undefined
  }
}

// ---- the wave sequence ----------------------------------------------------------------------

/** What a wave Psync reports is, to an Order expecting `next`. */
export type WaveVerdict =
  /** Below `next`: a restored checkpoint covers it; skip it. */
  | 'covered'
  /** The wave expected; `next` moves past it. */
  | 'next'
  /** Above `next`: waves were skipped (pruned from the log above the checkpoint). */
  | 'gap'

/**
 * The never-skip-a-wave rule of the Order specification. Psync reports complete waves in
 * order, from its prune floor after a restart; an Order expects them from its restored
 * checkpoint's wave (or 0). A wave above the expected one means Psync can no longer show it
 * what lies between — its log was pruned above the checkpoint, or it restarted without one
 * after pruning — and delivering on would give a sequence that differs from every other
 * replica's. The Order must then stop (`OrderStopped` describes the error to raise).
 *
 * Invariant: `next` only grows, by one per `'next'` wave, or by `restoreTo`.
 */
export class WaveSequence {
  private expected: number

  constructor(next = 0) {
    this.expected = next
  }

  /** The first wave not yet passed. */
  get next(): number {
    return this.expected
  }

  /** A restored checkpoint covers every wave below `wave`. */
  restoreTo(wave: number): void {
    if (wave > this.expected) this.expected = wave
  }

  /** Judges `wave` (and moves past it when it is the next one). */
  see(wave: number): WaveVerdict {
    if (wave < this.expected) return 'covered'
    if (wave > this.expected) return 'gap'
    this.expected++
    return 'next'
  }

  /** The message of the error an Order stops with at a gap before `wave`. */
  gapMessage(group: string, wave: number): string {
    return waveGapMessage(group, this.expected, wave)
  }
}

/**
 * Stops an Order at a gap in the wave sequence, the same way in every Order: counts
 * `waveGaps`, logs an error with the expected and the reported wave, rejects every pending and
 * later submit with `error` (the Order's own, coded `WAVE_GAP`, message from
 * `waveGapMessage`) and silences its acknowledgements. The Order itself stops delivering.
 */
export function stopAtWaveGap(
  ctx: { readonly counters: Counters; readonly log: Logger },
  parts: { readonly batcher: { fail(error: Error): void }; readonly acks: Acknowledger },
  error: Error,
  gap: { readonly expected: number; readonly reported: number },
): void {
  ctx.counters.inc('waveGaps')
  ctx.log.error('order stopped: a gap in the wave sequence', {
    expected: gap.expected,
    reported: gap.reported,
  })
  parts.batcher.fail(error)
  parts.acks.close()
}

/** What the error of an Order that stopped at a gap says (for Orders that track waves themselves). */
export function waveGapMessage(group: string, expected: number, reported: number): string {
  return `group ${group}: Psync reported wave ${reported} but this Order expects wave ${expected} — waves ${expected}..${reported - 1} are gone from the log (pruned above the restored checkpoint, or a restart without one after pruning). The Order has stopped rather than deliver a different order; restore this replica from a checkpoint at or above wave ${reported} (state transfer) and open the group again`
}

/** The `OrderedCommand` for the `index`-th command carried by `message`. */
export function orderedCommand(
  message: PsyncMessage,
  index: number,
  command: Uint8Array,
  position: OrderPosition,
): OrderedCommand {
  return {
    id: commandId(message.id, index),
    message: message.id,
    sender: message.sender,
    command,
    position,
    restored: message.restored,
  }
}

/**
 * Counts a delivery (`delivered`) and raises `trace.delivered` (layer `order`, the command's
 * wave as its depth) when anyone listens — what every Order does as it delivers a command.
 */
export function recordOrderDelivery(
  ctx: CommandBatcherContext,
  ordered: OrderedCommand,
  depth: number,
): void {
  ctx.counters.inc('delivered')
  if (ctx.events.has('trace.delivered')) recordOrderTrace(ctx, ordered, depth)
}

/**
 * Raises `trace.delivered` (layer `order`, the command's wave as its depth) unconditionally:
 * the half of `recordOrderDelivery` for an Order that counts `delivered` itself and checked
 * `events.has('trace.delivered')` once per message.
 */
export function recordOrderTrace(
  ctx: CommandBatcherContext,
  ordered: OrderedCommand,
  depth: number,
): void {
  ctx.events.emit('trace.delivered', {
    group: ctx.group.port,
    layer: 'order',
    id: ordered.id,
    from: ordered.sender,
    depth,
  })
}
