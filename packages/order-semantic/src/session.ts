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
 * Waves are never skipped: Psync reporting a wave above the expected one (its log pruned
 * above the restored checkpoint) stops the Order with `OrderError('WAVE_GAP')`. Submits
 * resolve at their level: `'agreed'` on delivery here, `'safe'` (default) once also stable.
 *
 * Acknowledgements and batching are order-total's (`@consul/xkernel`'s `Acknowledger` and
 * `CommandBatcher`): after receiving a command, a member with nothing to send sends an empty
 * acknowledgement after `ackDelayMs` (only for command-bearing messages, so acknowledgements
 * never ping-pong); commands submitted in one turn travel in one Psync message (`maxBatch`,
 * `maxBatchBytes`).
 */
import {
  type Counters,
  DecodeError,
  DIVIDER,
  type DividerControl,
  Listeners,
  OPERATIONS,
  ORDER_CHANNEL,
  type OrderControl,
  type OrderedCommand,
  type OrderPosition,
  PSYNC,
  type PsyncControl,
  type PsyncMessage,
  type SessionContext,
} from '@consul/xkernel'
import {
  Acknowledger,
  CommandBatcher,
  commandId,
  decodeCommandBatch,
  encodeCommandBatch,
  followPrimary,
  OrderError,
  orderedCommand,
  type QueuedCommand,
  recordOrderDelivery,
  stopAtWaveGap,
  waveGapMessage,
} from '@consul/xkernel/order'
import { classRank, type ResolvedOptions } from './options.js'
import { type NextCommand, type WaveCommand, WaveQueue } from './wave-queue.js'

const CHECKPOINT_KIND = 'order-semantic'
const CHECKPOINT_VERSION = 1

export class SemanticOrderSession {
  readonly control: OrderControl
  private readonly psync: PsyncControl
  private readonly counters: Counters
  private readonly waves = new WaveQueue()
  /** Own commands (tagged with their class rank) and their submits. */
  private readonly batcher: CommandBatcher<number>
  private readonly acks: Acknowledger
  /** The batch being sent right now (Psync delivers it back synchronously). */
  private sending: readonly QueuedCommand<number>[] | undefined
  private readonly handlers = new Listeners<[OrderedCommand]>(
    () => new OrderError('INVALID_ARGUMENT', 'onDeliver takes a function'),
  )
  private delivered = 0
  private deliveredHere = 0
  private pumping = false
  private closed = false
  /** The Order stopped at a gap in the wave sequence. */
  private stopped = false

  constructor(
    private readonly ctx: SessionContext<{ psync: PsyncControl; divider: DividerControl }>,
    private readonly options: ResolvedOptions,
  ) {
    this.psync = ctx.get(PSYNC)
    this.counters = ctx.counters
    this.batcher = new CommandBatcher(ctx, {
      maxBatch: options.maxBatch,
      maxBatchBytes: options.maxBatchBytes,
      error: (code, message) => new OrderError(code, message),
      tag: (command) => this.classify(command),
      send: (batch) => {
        this.sending = batch
        try {
          return this.send(encodeCommandBatch(batch.map((c) => c.command)))
        } finally {
          this.sending = undefined
        }
      },
    })
    this.acks = new Acknowledger(ctx, {
      ackDelayMs: options.ackDelayMs,
      flush: () => this.batcher.flush(),
      sendAck: () => this.send(new Uint8Array(0)),
    })
    // No new submits outside the primary partition (only Membership raises it).
    followPrimary(ctx, this.batcher)
    // Registered at open, so the replay of Psync's log (in its start) is seen too. Bare
    // acknowledgements too: another member's message confirms that ours went on the wire.
    ctx.get(DIVIDER).subscribe('order-semantic', {
      channels: [OPERATIONS],
      acknowledgements: true,
      deliver: (m) => this.onMessage(m),
      wave: (wave, messages) => this.onWave(wave, messages),
    })
    this.psync.onStable((sender, seq) => {
      if (sender === ctx.self) this.batcher.stableUpTo(seq)
    })
    this.control = {
      specificationVersion: 'v2',
      semantics: 'semantic',
      submit: (command, options) => this.batcher.submit(command, options),
      onDeliver: (handler) => this.handlers.add(handler),
      position: () => ({ wave: this.waves.wave, delivered: this.delivered }),
      atWaveBoundary: () => this.waves.ahead === 0,
      checkpoint: () => this.checkpoint(),
      restore: (bytes) => this.restore(bytes),
      holdAfter: (wave) => {
        if (wave !== undefined && (!Number.isSafeInteger(wave) || wave < -1))
          throw new OrderError(
            'INVALID_ARGUMENT',
            `holdAfter takes a wave >= -1, got ${String(wave)}`,
          )
        this.waves.barrier = wave
        this.pump()
      },
    }
  }

  /** The class rank of a command submitted here; a bad one rejects the submit. */
  private classify(command: Uint8Array): number {
    const classified = classRank(this.options.classOf, command)
    if ('problem' in classified) {
      throw new OrderError(
        'BAD_CLASS',
        `submit(): ${classified.problem}; fix classOf so it returns 0, 1, 2, … for every command the application submits`,
        'cause' in classified ? { cause: classified.cause } : undefined,
      )
    }
    return classified.rank
  }

  /** Every send goes through here: anything sent acknowledges what was received. */
  private send(payload: Uint8Array): PsyncMessage {
    const message = this.psync.send(payload)
    this.acks.sent()
    return message
  }

  private onMessage(message: PsyncMessage): void {
    if (this.closed) return
    const own = message.sender === this.ctx.self
    const commandBearing = message.payload.length > 0 && message.payload[0] === ORDER_CHANNEL
    if (!own) {
      // Replayed ones too: the crash may have taken our acknowledgement with it (the command
      // reached the log, the ack did not), and the others' wave would wait for it forever.
      if (commandBearing) this.acks.received()
      // Another member has seen our message: it went on the wire, so it is durable.
      for (const id of this.waves.unconfirmed()) {
        if (this.psync.precedes(id, message.id)) this.waves.confirm(id)
      }
    }
    if (commandBearing) this.buffer(message, own)
    this.pump()
  }

  /** Decodes and classifies a command-bearing message and hands it to the wave queue. */
  private buffer(message: PsyncMessage, own: boolean): void {
    const sending = own && !message.restored ? this.sending : undefined
    let raw: Uint8Array[] | undefined
    try {
      raw = decodeCommandBatch(message.payload)
    } catch (error) {
      if (!DecodeError.isInstance(error)) throw error
      this.counters.inc('droppedMalformed')
      this.ctx.log.warn('malformed command batch skipped', { id: message.id, error: error.message })
      return
    }
    if (raw === undefined) return
    const commands: WaveCommand[] = []
    raw.forEach((command, index) => {
      const id = commandId(message.id, index)
      // Own commands being sent keep the rank they were submitted with.
      const queued = sending?.[index]
      if (queued !== undefined) {
        commands.push({ id, message, index, command, rank: queued.tag, delivered: false })
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
      commands.push({ id, message, index, command, rank: classified.rank, delivered: false })
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
    const ordered = orderedCommand(c.message, c.index, c.command, position)
    recordOrderDelivery(this.ctx, ordered, wave)
    this.counters.inc(early ? 'deliveredEarly' : 'deliveredAtWave')
    this.handlers.emit(ordered)
    if (c.message.sender === this.ctx.self) this.batcher.deliveredAt(c.message.id, c.index, ordered)
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
    const gap = this.waves.gap
    if (gap !== undefined && !this.stopped) {
      // Never skip a wave: stop, loudly (the Order specification's rule).
      this.stopped = true
      const error = new OrderError(
        'WAVE_GAP',
        waveGapMessage(this.ctx.group.port, gap.expected, gap.reported),
      )
      stopAtWaveGap(this.ctx, { batcher: this.batcher, acks: this.acks }, error, gap)
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
    this.acks.close()
    this.batcher.close()
  }
}
