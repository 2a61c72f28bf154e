/**
 * Semantic-dependent order on Psync. The application's `classOf` splits commands into
 * commutativity classes (ranks); commands of one rank commute, of different ranks do not.
 * Every pair of non-commuting commands is delivered in the key order
 * `(wave, rank, sender, index)` at every replica, and rank-0 commands are delivered early —
 * as soon as the waves before theirs are delivered — instead of waiting for their wave to
 * complete. The rule and why it is safe: `wave-queue.ts`.
 *
 * One more condition for early delivery: an own message must be durable first. Psync puts an
 * own message on the wire only once it is in the local log, but it delivers it locally at
 * once; a crash before the log commit would take away a command this replica had already
 * delivered and acknowledged. A message of another member that has the own message in its
 * causal past proves it went out (so it was durable); until then its commands wait (or go
 * at wave completion, which Psync counts only with durable own messages).
 *
 * Acknowledgements and batching are order-total's: after receiving a command, a member with
 * nothing to send sends an empty acknowledgement after `ackDelayMs` (only for command-bearing
 * messages, so acknowledgements never ping-pong); commands submitted in one turn travel in one
 * Psync message (`maxBatch`, `maxBatchBytes`).
 */
import {
  type Counters,
  commandId,
  DecodeError,
  decodeCommandBatch,
  encodeCommandBatch,
  ORDER_CHANNEL,
  type OrderControl,
  type OrderedCommand,
  type OrderPosition,
  PSYNC,
  type PsyncControl,
  type PsyncMessage,
  type SessionContext,
  type Timer,
} from '@consul/xkernel'
import { OrderError } from './errors.js'
import { classRank, type ResolvedOptions } from './options.js'
import { type NextCommand, type WaveCommand, WaveQueue } from './wave-queue.js'

interface Pending {
  readonly command: Uint8Array
  readonly rank: number
  readonly resolve: (c: OrderedCommand) => void
  readonly reject: (e: Error) => void
}

const CHECKPOINT_KIND = 'order-semantic'
const CHECKPOINT_VERSION = 1

export class SemanticOrderSession {
  readonly control: OrderControl
  private readonly psync: PsyncControl
  private readonly counters: Counters
  private readonly waves = new WaveQueue()
  private queue: Pending[] = []
  private queuedBytes = 0
  /** The batch `flush` is sending right now (Psync delivers it back synchronously). */
  private sending: Pending[] | undefined
  private readonly waiting = new Map<string, Pending>()
  private readonly handlers: ((c: OrderedCommand) => void)[] = []
  private flushTimer: Timer | undefined
  private ackTimer: Timer | undefined
  private needAck = false
  private delivered = 0
  private deliveredHere = 0
  private pumping = false
  private closed = false

  constructor(
    private readonly ctx: SessionContext<{ psync: PsyncControl }>,
    private readonly options: ResolvedOptions,
  ) {
    this.psync = ctx.get(PSYNC)
    this.counters = ctx.counters
    // Registered at open, so the replay of Psync's log (in its start) is seen too.
    this.psync.onDeliver((m) => this.onMessage(m))
    this.psync.onWave((wave, messages) => this.onWave(wave, messages))
    this.control = {
      specificationVersion: 'v1',
      semantics: 'semantic',
      submit: (command) => this.submit(command),
      onDeliver: (handler) => {
        if (typeof handler !== 'function')
          throw new OrderError('INVALID_ARGUMENT', 'onDeliver takes a function')
        this.handlers.push(handler)
        return () => {
          const i = this.handlers.indexOf(handler)
          if (i >= 0) this.handlers.splice(i, 1)
        }
      },
      position: () => ({ wave: this.waves.wave, delivered: this.delivered }),
      atWaveBoundary: () => this.waves.ahead === 0,
      checkpoint: () => this.checkpoint(),
      restore: (bytes) => this.restore(bytes),
    }
  }

  private submit(command: Uint8Array): Promise<OrderedCommand> {
    if (!(command instanceof Uint8Array)) {
      return Promise.reject(
        new OrderError('INVALID_ARGUMENT', 'submit() takes the command as a Uint8Array'),
      )
    }
    if (this.closed)
      return Promise.reject(new OrderError('CLOSED', `group ${this.ctx.group.port} is closed`))
    if (command.length > this.options.maxBatchBytes) {
      return Promise.reject(
        new OrderError(
          'INVALID_ARGUMENT',
          `command of ${command.length} bytes exceeds maxBatchBytes (${this.options.maxBatchBytes})`,
        ),
      )
    }
    const copy = command.slice()
    const classified = classRank(this.options.classOf, copy)
    if ('problem' in classified) {
      return Promise.reject(
        new OrderError(
          'BAD_CLASS',
          `submit(): ${classified.problem}; fix classOf so it returns 0, 1, 2, … for every command the application submits`,
          'cause' in classified ? { cause: classified.cause } : undefined,
        ),
      )
    }
    return new Promise<OrderedCommand>((resolve, reject) => {
      if (this.queuedBytes + copy.length > this.options.maxBatchBytes) this.flush()
      this.queue.push({ command: copy, rank: classified.rank, resolve, reject })
      this.queuedBytes += copy.length
      this.counters.inc('submitted')
      if (this.queue.length >= this.options.maxBatch) this.flush()
      else this.flushTimer ??= this.ctx.clock.setTimer(0, () => this.flush())
    })
  }

  /** Sends the queued commands in one Psync message (which also acknowledges). */
  private flush(): void {
    this.flushTimer?.cancel()
    this.flushTimer = undefined
    if (this.queue.length === 0 || this.closed) return
    const batch = this.queue
    this.queue = []
    this.queuedBytes = 0
    this.sending = batch
    try {
      this.psync.send(encodeCommandBatch(batch.map((p) => p.command)))
    } catch (error) {
      // e.g. a batch over Psync's maxPayloadBytes: the submitters hear of it.
      for (const p of batch) p.reject(error instanceof Error ? error : new Error(String(error)))
      return
    } finally {
      this.sending = undefined
    }
    this.needAck = false
    this.counters.inc('batches')
  }

  private onMessage(message: PsyncMessage): void {
    if (this.closed) return
    const own = message.sender === this.ctx.self
    const commandBearing = message.payload.length > 0 && message.payload[0] === ORDER_CHANNEL
    if (!own) {
      // Replayed ones too: the crash may have taken our acknowledgement with it (the command
      // reached the log, the ack did not), and the others' wave would wait for it forever.
      if (commandBearing) this.scheduleAck()
      // Another member has seen our message: it went on the wire, so it is durable.
      for (const id of this.waves.unconfirmed()) {
        if (this.psync.precedes(id, message.id)) this.waves.confirm(id)
      }
    }
    if (commandBearing) this.buffer(message, own)
    this.pump()
  }

  /** A command from someone else: its wave needs our acknowledgement. */
  private scheduleAck(): void {
    this.needAck = true
    this.ackTimer ??= this.ctx.clock.setTimer(this.options.ackDelayMs, () => {
      this.ackTimer = undefined
      if (!this.needAck || this.closed) return
      if (this.queue.length > 0) this.flush()
      else {
        this.psync.send(new Uint8Array(0))
        this.needAck = false
        this.counters.inc('acks')
      }
    })
  }

  /** Decodes and classifies a command-bearing message and hands it to the wave queue. */
  private buffer(message: PsyncMessage, own: boolean): void {
    const sending = own && !message.restored ? this.sending : undefined
    let raw: Uint8Array[] | undefined
    try {
      raw = decodeCommandBatch(message.payload)
    } catch (error) {
      if (!(error instanceof DecodeError)) throw error
      this.counters.inc('droppedMalformed')
      this.ctx.log.warn('malformed command batch skipped', { id: message.id, error: error.message })
      return
    }
    if (raw === undefined) return
    const commands: WaveCommand[] = []
    raw.forEach((command, index) => {
      const id = commandId(message.id, index)
      const pending = sending?.[index]
      if (pending !== undefined) {
        this.waiting.set(id, pending)
        if (this.ctx.events.has('trace.sent')) {
          this.ctx.events.emit('trace.sent', { group: this.ctx.group.port, layer: 'order', id })
        }
        commands.push({ id, message, index, command, rank: pending.rank })
        return
      }
      const classified = classRank(this.options.classOf, command)
      if ('problem' in classified) {
        // The same at every replica (classOf is a pure function), so every replica skips it.
        this.counters.inc('droppedBadClass')
        this.ctx.log.warn('command with a bad class skipped', {
          id,
          from: message.sender,
          problem: classified.problem,
        })
        return
      }
      commands.push({ id, message, index, command, rank: classified.rank })
    })
    // Replayed own messages come from the log: durable.
    this.waves.add(message, commands, !own || message.restored)
  }

  private onWave(wave: number, messages: readonly PsyncMessage[]): void {
    if (this.closed) return
    this.waves.complete(
      wave,
      messages.map((m) => m.id),
    )
    this.pump()
  }

  /** Delivers whatever the rule allows now. Re-entrant calls (from handlers) return at once. */
  private pump(): void {
    if (this.pumping) return
    this.pumping = true
    try {
      for (let next = this.waves.next(); next !== undefined; next = this.waves.next()) {
        this.deliver(next)
        if (this.closed) break
      }
    } finally {
      this.pumping = false
    }
    this.reportAnomalies()
  }

  private deliver({ command: c, wave, early }: NextCommand): void {
    this.delivered++
    this.deliveredHere++
    const position: OrderPosition = { wave, delivered: this.delivered }
    const ordered: OrderedCommand = {
      id: c.id,
      message: c.message.id,
      sender: c.message.sender,
      command: c.command,
      position,
      restored: c.message.restored,
    }
    this.counters.inc('delivered')
    this.counters.inc(early ? 'deliveredEarly' : 'deliveredAtWave')
    if (this.ctx.events.has('trace.delivered')) {
      this.ctx.events.emit('trace.delivered', {
        group: this.ctx.group.port,
        layer: 'order',
        id: ordered.id,
        from: ordered.sender,
        depth: wave,
      })
    }
    for (const handler of this.handlers) handler(ordered)
    const pending = this.waiting.get(ordered.id)
    if (pending !== undefined) {
      this.waiting.delete(ordered.id)
      pending.resolve(ordered)
    }
  }

  /** Things that only a broken stack below can cause: logged loudly and counted. */
  private reportAnomalies(): void {
    for (const c of this.waves.lost.splice(0)) {
      this.counters.inc('earlyDeliveredThenDiscarded')
      this.ctx.log.error(
        'a command delivered early is missing from its complete wave (its message was discarded by an exclusion cut after delivery)',
        { id: c.id, from: c.message.sender, wave: c.message.depth },
      )
    }
    for (const gap of this.waves.skipped.splice(0)) {
      this.counters.inc('wavesSkipped', gap.to - gap.from)
      this.ctx.log.error(
        'Psync completed a wave without reporting the ones before it; they are skipped (its log was pruned above the restored checkpoint?)',
        { from: gap.from, to: gap.to },
      )
    }
  }

  private checkpoint(): Uint8Array {
    if (this.waves.ahead > 0) {
      throw new OrderError(
        'NOT_AT_WAVE_BOUNDARY',
        `checkpoint() needs a wave boundary, but ${this.waves.ahead} command(s) of wave ${this.waves.wave} are already delivered (early, or from inside a delivery); take it when atWaveBoundary() is true`,
      )
    }
    const text = JSON.stringify({
      kind: CHECKPOINT_KIND,
      v: CHECKPOINT_VERSION,
      wave: this.waves.wave,
      delivered: this.delivered,
    })
    return new TextEncoder().encode(text)
  }

  private restore(bytes: Uint8Array): void {
    if (!(bytes instanceof Uint8Array))
      throw new OrderError('INVALID_ARGUMENT', 'restore() takes the checkpoint as a Uint8Array')
    if (this.deliveredHere > 0) {
      throw new OrderError(
        'INVALID_ARGUMENT',
        'restore() must be called when the group opens, before the first delivery',
      )
    }
    let state: { kind?: unknown; v?: unknown; wave?: unknown; delivered?: unknown }
    try {
      state = JSON.parse(new TextDecoder().decode(bytes)) as typeof state
    } catch {
      throw new OrderError('BAD_CHECKPOINT', 'checkpoint is not an order-semantic checkpoint')
    }
    if (
      typeof state !== 'object' ||
      state === null ||
      state.kind !== CHECKPOINT_KIND ||
      state.v !== CHECKPOINT_VERSION ||
      !Number.isSafeInteger(state.wave) ||
      (state.wave as number) < 0 ||
      !Number.isSafeInteger(state.delivered) ||
      (state.delivered as number) < 0
    ) {
      throw new OrderError(
        'BAD_CHECKPOINT',
        `unsupported order-semantic checkpoint ${JSON.stringify(state)}`,
      )
    }
    this.waves.skipTo(state.wave as number)
    this.delivered = state.delivered as number
  }

  close(): void {
    this.closed = true
    this.flushTimer?.cancel()
    this.ackTimer?.cancel()
    const error = new OrderError(
      'CLOSED',
      `group ${this.ctx.group.port} closed before the command was delivered`,
    )
    for (const p of [...this.queue, ...this.waiting.values()]) p.reject(error)
    this.queue = []
    this.waiting.clear()
  }
}
