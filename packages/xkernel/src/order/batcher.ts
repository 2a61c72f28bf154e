/**
 * The submit side of an Order: commands submitted in one event-loop turn go out in one Psync
 * message, and each submit resolves at its delivery level (`'agreed'`: delivered here;
 * `'safe'`: delivered here and its message stable). No ordering decision and no wire format:
 * the Order frames each batch in `send` and says when a command is delivered.
 */
import type { Clock, Timer } from '../clock.js'
import type { Counters } from '../counters.js'
import type { DeliveryLevel, OrderedCommand, SubmitOptions } from '../order-spec.js'
import type { SessionEvents } from '../protocol.js'
import type { MessageId } from '../psync-control.js'
import type { OrderErrorFactory } from './errors.js'
import { commandId } from './framing.js'

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
  /**
   * Builds the Order's errors (the `INVALID_ARGUMENT`, `CLOSED` and `NO_PRIMARY` rejections
   * of `submit`).
   */
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
 * or is larger than `maxBatchBytes`, `CLOSED` after `close()`, `NO_PRIMARY` while the replica
 * is outside the primary partition (`primary(state, view)`).
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
  /**
   * Whether this replica may order (the last `primary()` call) and the view it was told in.
   * Invariant: once `'excluded'`, it stays so.
   */
  private partition: { state: 'primary' | 'minority' | 'leaving' | 'excluded'; view: number } = {
    state: 'primary',
    view: 0,
  }
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
    const { maxBatch, maxBatchBytes } = this.options
    // Every refusal here is of a command that is not sent.
    const error = (code: 'INVALID_ARGUMENT' | 'CLOSED', message: string) =>
      this.notSent(code, message)
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
    if (this.partition.state !== 'primary') return Promise.reject(this.noPrimary())
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
      return Promise.reject(markNotApplied(problem))
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
      // e.g. a batch over Psync's maxPayloadBytes: the submitters hear of it (nothing went out).
      const error = markNotApplied(problem instanceof Error ? problem : new Error(String(problem)))
      for (const p of batch) p.reject(error)
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
    const port = this.ctx.group.port
    this.rejectAll(
      this.options.error('CLOSED', `group ${port} closed before the command was delivered`),
      this.notSent('CLOSED', `group ${port} closed before the command was sent`),
    )
  }

  /**
   * Membership's verdict on this replica (`membership.primary`; `followPrimary` wires it).
   * `'minority'` (or `'leaving'`): new submits reject with `NO_PRIMARY` — the command is not sent — while the
   * pending ones stay pending: their messages may still be ordered once the partition heals.
   * `'excluded'`: the primary went on without this replica, so new submits reject likewise
   * and so does every pending one (queued or sent, at any level): whether the primary
   * ordered it cannot be known here. `'primary'` accepts submits again, except after
   * `'excluded'`, which is final for this batcher (the replica comes back as a new
   * incarnation, with a new session).
   */
  primary(state: 'primary' | 'minority' | 'leaving' | 'excluded', view: number): void {
    if (this.partition.state === 'excluded') return
    this.partition = { state, view }
    if (state !== 'excluded' || this.closed || this.failure !== undefined) return
    const excluded = `group ${this.ctx.group.port}: this replica was excluded from the primary partition (view ${view})`
    this.rejectAll(
      this.options.error(
        'NO_PRIMARY',
        `${excluded} before the command was delivered here; its outcome is unknown here ` +
          '(the primary may have ordered it)',
      ),
      this.notSent('NO_PRIMARY', `${excluded} before the command was sent`),
    )
  }

  /** An error for a command that was not sent (`notApplied`, whatever the factory builds). */
  private notSent(code: 'INVALID_ARGUMENT' | 'CLOSED' | 'NO_PRIMARY', message: string): Error {
    return markNotApplied(this.options.error(code, message, { notApplied: true }))
  }

  /** The rejection of a submit outside the primary partition (the command is not sent). */
  private noPrimary(): Error {
    const { state, view } = this.partition
    const port = this.ctx.group.port
    return this.notSent(
      'NO_PRIMARY',
      state === 'excluded'
        ? `group ${port}: this replica was excluded from the primary partition (view ${view}) ` +
            'and cannot order any more (it rejoins only as a new incarnation); the command was not sent'
        : state === 'leaving'
          ? `group ${port}: this replica is leaving the group (leave() in view ${view}); the command was not sent`
          : `group ${port} is in a minority partition (view ${view}): it cannot order until it ` +
            'reaches a majority again; the command was not sent',
    )
  }

  /** Rejects the sent submits with `error`, the queued ones (never sent) with `unsent`. */
  private rejectAll(error: Error, unsent: Error = error): void {
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
    for (const p of queued) p.reject(unsent)
    for (const batch of sent) for (const p of batch.pending) p?.reject(error)
  }
}

/**
 * `problem` with `notApplied: true` (an error an Order's factory or a `tag` function built
 * without it); a non-object is wrapped in an `Error` first. A frozen error is wrapped too.
 */
function markNotApplied(problem: unknown): Error {
  const error = problem instanceof Error ? problem : new Error(String(problem))
  if ((error as { notApplied?: unknown }).notApplied === true) return error
  try {
    Object.defineProperty(error, 'notApplied', { value: true, enumerable: true })
    return error
  } catch {
    return Object.assign(new Error(error.message, { cause: error }), { notApplied: true })
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
