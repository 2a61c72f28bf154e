/**
 * Semantic-dependent order on Psync. The application's `classOf` splits commands into
 * commutativity classes (ranks); commands of one rank commute, of different ranks do not.
 * Every pair of non-commuting commands is delivered in the key order
 * `(wave, rank, sender, index)` at every replica, and rank-0 commands are delivered early —
 * as soon as the waves before theirs are delivered — instead of waiting for their wave to
 * complete. Or its `keysOf` says which keys a command touches: commands conflict iff they
 * share a key and one writes (or one is `'all'`); the key is `(wave, sender, index)` and any
 * command may go early once every conflicting command before it is known and delivered.
 * The rules and why they are safe: `wave-queue.ts`.
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
import type { Access } from './keys.js'
import { classRank, commandAccess, type ResolvedOptions } from './options.js'
import type { NextCommand, WaveCommand, WaveQueue } from './wave-queue.js'

/** What the mode knows of a command: its class rank, or (key mode) rank 0 and its access. */
type Classified = { readonly rank: number; readonly access?: Access }

const CHECKPOINT_KIND = 'order-semantic'
const CHECKPOINT_VERSION = 1

export class SemanticOrderSession {
  readonly control: OrderControl
  private readonly psync: PsyncControl
  private readonly counters: Counters
  private readonly waves: WaveQueue
  /** Own commands (tagged with their class rank or access) and their submits. */
  private readonly batcher: CommandBatcher<Classified>
  /** Key mode: own messages sent but not yet durable, `[seq, depth]` in seq order. */
  private readonly notDurable: [number, number][] = []
  private readonly acks: Acknowledger
  /** The batch being sent right now (Psync delivers it back synchronously). */
  private sending: readonly QueuedCommand<Classified>[] | undefined
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
    this.waves = options.queue(options.keysOf === undefined ? undefined : ctx.group.members)
    this.batcher = new CommandBatcher(ctx, {
      maxBatch: options.maxBatch,
      maxBatchBytes: options.maxBatchBytes,
      error: (code, message, details) => new OrderError(code, message, details),
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
    // Key mode: an own message counts (its commands may go early, it shows that this member
    // passed its wave) once durable — it goes on the wire then.
    if (this.waves.keyed) this.psync.onDurable((seq) => this.durableUpTo(seq))
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

  /** The class rank or access of a command submitted here; a bad one rejects the submit. */
  private classify(command: Uint8Array): Classified {
    const classified = this.classifyAny(command)
    if ('problem' in classified) {
      const fix =
        this.options.keysOf === undefined
          ? 'fix classOf so it returns 0, 1, 2, … for every command the application submits'
          : "fix keysOf so it returns 'all' or { keys: string[], write: boolean } for every command the application submits"
      throw new OrderError(
        'BAD_CLASS',
        `submit(): ${classified.problem}; ${fix}`,
        'cause' in classified ? { cause: classified.cause } : undefined,
      )
    }
    return classified
  }

  private classifyAny(command: Uint8Array): Classified | { problem: string; cause?: unknown } {
    if (this.options.keysOf !== undefined) {
      const keyed = commandAccess(this.options.keysOf, command)
      return 'problem' in keyed ? keyed : { rank: 0, access: keyed.access }
    }
    return classRank(this.options.classOf!, command)
  }

  /** Key mode: own messages up to `seq` are durable (in the log, so on the wire). */
  private durableUpTo(seq: number): void {
    if (this.closed) return
    let reached = -1
    while (this.notDurable.length > 0 && this.notDurable[0]![0] <= seq)
      reached = Math.max(reached, this.notDurable.shift()![1])
    for (const id of this.waves.unconfirmed()) if (this.psync.durable(id)) this.waves.confirm(id)
    if (reached >= 0) this.waves.reached(this.ctx.self, reached)
    this.pump()
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
    if (this.waves.keyed) {
      // Replayed own messages come from the log: durable. Other own ones count once durable.
      if (!own || message.restored || this.psync.durable(message.id))
        this.waves.reached(message.sender, message.depth)
      else this.notDurable.push([message.seq, message.depth])
    }
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
      // Own commands being sent keep the class they were submitted with.
      const classified = sending?.[index]?.tag ?? this.classifyAny(command)
      if ('problem' in classified) {
        // The same at every replica (classOf / keysOf is a pure function), so every replica
        // skips it.
        this.counters.inc('droppedBadClass')
        this.ctx.log.warn('command with a bad class skipped', {
          id,
          from: message.sender,
          problem: classified.problem,
        })
        return
      }
      commands.push({ id, message, index, command, ...classified, delivered: false })
    })
    // Replayed own messages come from the log: durable. Key mode: so are own ones Psync
    // already reports durable.
    this.waves.add(
      message,
      commands,
      !own || message.restored || (this.waves.keyed && this.psync.durable(message.id)),
    )
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
