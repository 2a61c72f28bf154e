/**
 * Consistent total order from waves. Psync completes wave *i* once every member of the
 * agreed list has sent a message of depth ≥ *i*; at that point the wave's contents are the
 * same at every member, so delivering complete waves in order, and each wave's messages by
 * sender id, gives every replica the same sequence (with Psync's atomic delivery: an atomic
 * broadcast). Completion is judged against the agreed list only; suspicion never changes it.
 *
 * Waves are never skipped (`WaveSequence`): a wave above the expected one — Psync's log was
 * pruned above the restored checkpoint — stops the Order with `OrderError('WAVE_GAP')`
 * instead of delivering a sequence that differs from every other replica's. Submits resolve
 * at their level: `'agreed'` on delivery here, `'safe'` (default) once also stable.
 *
 * Latency: every member must pass each wave, so after receiving a command a member with
 * nothing to send sends an empty acknowledgement after `ackDelayMs` — only for
 * command-bearing messages, so acknowledgements never ping-pong. Under load, commands
 * submitted in one turn travel in one Psync message (`maxBatch`, `maxBatchBytes`). Both are
 * `@consul/xkernel`'s `Acknowledger` and `CommandBatcher`.
 */
import {
  DecodeError,
  DIVIDER,
  type DividerControl,
  Listeners,
  OPERATIONS,
  type OrderControl,
  type OrderedCommand,
  PSYNC,
  type PsyncControl,
  type PsyncMessage,
  type SessionContext,
} from '@consul/xkernel'
import {
  Acknowledger,
  CommandBatcher,
  decodeCommandBatch,
  encodeCommandBatch,
  followPrimary,
  OrderError,
  orderedCommand,
  recordOrderTrace,
  stopAtWaveGap,
  WaveSequence,
} from '@consul/xkernel/order'
import type { ResolvedOptions } from './options.js'

const CHECKPOINT_VERSION = 1

export class TotalOrderSession {
  readonly control: OrderControl
  private readonly psync: PsyncControl
  private readonly batcher: CommandBatcher
  private readonly acks: Acknowledger
  private readonly handlers = new Listeners<[OrderedCommand]>(
    () => new OrderError('INVALID_ARGUMENT', 'onDeliver takes a function'),
  )
  private readonly waves = new WaveSequence()
  private delivered = 0
  private inWave = false
  /** `holdAfter`: no wave above it is delivered (undefined: none held). */
  private barrier: number | undefined
  /** Waves that came while held, in order. */
  private readonly parked: { readonly wave: number; readonly messages: readonly PsyncMessage[] }[] =
    []
  /** Set when the Order stopped (a gap in the wave sequence): nothing is delivered after it. */
  private stopped: OrderError | undefined

  constructor(
    private readonly ctx: SessionContext<{ psync: PsyncControl; divider: DividerControl }>,
    options: ResolvedOptions,
  ) {
    this.psync = ctx.get(PSYNC)
    this.batcher = new CommandBatcher(ctx, {
      maxBatch: options.maxBatch,
      maxBatchBytes: options.maxBatchBytes,
      error: (code, message, details) => new OrderError(code, message, details),
      send: (batch) => this.send(encodeCommandBatch(batch.map((c) => c.command))),
    })
    this.acks = new Acknowledger(ctx, {
      ackDelayMs: options.ackDelayMs,
      flush: () => this.batcher.flush(),
      sendAck: () => this.send(new Uint8Array(0)),
    })
    // No new submits outside the primary partition (only Membership raises it).
    followPrimary(ctx, this.batcher)
    // Registered at open, so the replay of Psync's log (in its start) is seen too. The Divider
    // hands over command-bearing messages only, and every wave (specification v2).
    ctx.get(DIVIDER).subscribe('order-total', {
      channels: [OPERATIONS],
      deliver: (m) => this.onMessage(m),
      wave: (wave, messages) => this.onWaveHeld(wave, messages),
    })
    this.psync.onStable((sender, seq) => {
      if (sender === ctx.self) this.batcher.stableUpTo(seq)
    })
    this.control = {
      specificationVersion: 'v2',
      semantics: 'total',
      submit: (command, options) => this.batcher.submit(command, options),
      onDeliver: (handler) => this.handlers.add(handler),
      position: () => ({ wave: this.waves.next, delivered: this.delivered }),
      atWaveBoundary: () => !this.inWave,
      checkpoint: () => this.checkpoint(),
      restore: (bytes) => this.restore(bytes),
      holdAfter: (wave) => this.holdAfter(wave),
    }
  }

  /** `holdAfter`: waves above `wave` wait (see `OrderControl.holdAfter`). */
  private holdAfter(wave: number | undefined): void {
    if (wave !== undefined && (!Number.isSafeInteger(wave) || wave < -1))
      throw new OrderError('INVALID_ARGUMENT', `holdAfter takes a wave >= -1, got ${String(wave)}`)
    this.barrier = wave
    while (
      this.parked.length > 0 &&
      (this.barrier === undefined || this.parked[0]!.wave <= this.barrier)
    ) {
      const next = this.parked.shift()!
      this.onWave(next.wave, next.messages)
    }
  }

  private onWaveHeld(wave: number, messages: readonly PsyncMessage[]): void {
    if (this.barrier !== undefined && (wave > this.barrier || this.parked.length > 0)) {
      this.parked.push({ wave, messages: [...messages] })
      return
    }
    this.onWave(wave, messages)
  }

  /** Every send goes through here: anything sent acknowledges what was received. */
  private send(payload: Uint8Array): PsyncMessage {
    const message = this.psync.send(payload)
    this.acks.sent()
    return message
  }

  private onMessage(message: PsyncMessage): void {
    // Restored ones too: the acknowledgement may have died with the crash that the log
    // survived, and the wave would wait for it forever.
    if (message.sender === this.ctx.self) return
    // A command from someone else (the Divider hands over nothing else): its wave needs our
    // acknowledgement.
    this.acks.received()
  }

  private onWave(wave: number, messages: readonly PsyncMessage[]): void {
    if (this.stopped !== undefined) return
    const verdict = this.waves.see(wave)
    if (verdict === 'covered') return // covered by a restored checkpoint
    if (verdict === 'gap') {
      this.stop(wave)
      return
    }
    this.inWave = true
    try {
      for (const message of messages) {
        let commands: Uint8Array[] | undefined
        try {
          commands = decodeCommandBatch(message.payload)
        } catch (error) {
          if (!DecodeError.isInstance(error)) throw error
          this.ctx.counters.inc('droppedMalformed')
          this.ctx.log.warn('malformed command batch skipped', {
            id: message.id,
            error: error.message,
          })
          continue
        }
        if (commands !== undefined) this.deliverBatch(message, commands, wave)
      }
    } finally {
      this.inWave = false
    }
  }

  /** A gap before `wave`: stop for good, loudly (see `WaveSequence`). */
  private stop(wave: number): void {
    const error = new OrderError('WAVE_GAP', this.waves.gapMessage(this.ctx.group.port, wave))
    this.stopped = error
    stopAtWaveGap(this.ctx, { batcher: this.batcher, acks: this.acks }, error, {
      expected: this.waves.next,
      reported: wave,
    })
  }

  /** Delivers one message's commands; the per-message work is done once, not per command. */
  private deliverBatch(message: PsyncMessage, commands: readonly Uint8Array[], wave: number): void {
    const own = message.sender === this.ctx.self
    const traced = this.ctx.events.has('trace.delivered')
    for (let i = 0; i < commands.length; i++) {
      this.delivered++
      const ordered = orderedCommand(message, i, commands[i]!, {
        wave,
        delivered: this.delivered,
      })
      this.ctx.counters.inc('delivered')
      if (traced) recordOrderTrace(this.ctx, ordered, wave)
      this.handlers.emit(ordered)
      if (own) this.batcher.deliveredAt(message.id, i, ordered)
    }
  }

  private checkpoint(): Uint8Array {
    if (this.inWave) {
      throw new OrderError(
        'NOT_AT_WAVE_BOUNDARY',
        'checkpoint() is taken between waves, not from inside a delivery',
      )
    }
    const text = JSON.stringify({
      v: CHECKPOINT_VERSION,
      wave: this.waves.next,
      delivered: this.delivered,
    })
    return new TextEncoder().encode(text)
  }

  private restore(bytes: Uint8Array): void {
    let state: { v?: unknown; wave?: unknown; delivered?: unknown }
    try {
      state = JSON.parse(new TextDecoder().decode(bytes)) as typeof state
    } catch {
      throw new OrderError('BAD_CHECKPOINT', 'checkpoint is not an order-total checkpoint')
    }
    if (
      state.v !== CHECKPOINT_VERSION ||
      !Number.isSafeInteger(state.wave) ||
      !Number.isSafeInteger(state.delivered)
    ) {
      throw new OrderError(
        'BAD_CHECKPOINT',
        `unsupported order-total checkpoint ${JSON.stringify(state)}`,
      )
    }
    this.waves.restoreTo(state.wave as number)
    this.delivered = state.delivered as number
  }

  close(): void {
    this.acks.close()
    this.batcher.close()
  }
}
