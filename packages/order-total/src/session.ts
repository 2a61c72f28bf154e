/**
 * Consistent total order from waves. Psync completes wave *i* once every member of the
 * agreed list has sent a message of depth ≥ *i*; at that point the wave's contents are the
 * same at every member, so delivering complete waves in order, and each wave's messages by
 * sender id, gives every replica the same sequence (with Psync's atomic delivery: an atomic
 * broadcast). Completion is judged against the agreed list only; suspicion never changes it.
 *
 * Latency: every member must pass each wave, so after receiving a command a member with
 * nothing to send sends an empty acknowledgement after `ackDelayMs` — only for
 * command-bearing messages, so acknowledgements never ping-pong. Under load, commands
 * submitted in one turn travel in one Psync message (`maxBatch`, `maxBatchBytes`).
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
import type { ResolvedOptions } from './options.js'

interface Pending {
  readonly command: Uint8Array
  readonly resolve: (c: OrderedCommand) => void
  readonly reject: (e: Error) => void
}

const CHECKPOINT_VERSION = 1

export class TotalOrderSession {
  readonly control: OrderControl
  private readonly psync: PsyncControl
  private readonly counters: Counters
  private queue: Pending[] = []
  private queuedBytes = 0
  private readonly waiting = new Map<string, Pending>()
  private readonly handlers: ((c: OrderedCommand) => void)[] = []
  private flushTimer: Timer | undefined
  private ackTimer: Timer | undefined
  private needAck = false
  private nextWave = 0
  private delivered = 0
  private inWave = false
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
      semantics: 'total',
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
      position: () => ({ wave: this.nextWave, delivered: this.delivered }),
      atWaveBoundary: () => !this.inWave,
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
    return new Promise<OrderedCommand>((resolve, reject) => {
      if (this.queuedBytes + command.length > this.options.maxBatchBytes) this.flush()
      this.queue.push({ command: command.slice(), resolve, reject })
      this.queuedBytes += command.length
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
    const message = this.psync.send(encodeCommandBatch(batch.map((p) => p.command)))
    this.needAck = false
    this.counters.inc('batches')
    batch.forEach((p, i) => {
      const id = commandId(message.id, i)
      this.waiting.set(id, p)
      if (this.ctx.events.has('trace.sent')) {
        this.ctx.events.emit('trace.sent', { group: this.ctx.group.port, layer: 'order', id })
      }
    })
  }

  private onMessage(message: PsyncMessage): void {
    // Restored ones too: the acknowledgement may have died with the crash that the log
    // survived, and the wave would wait for it forever.
    if (message.sender === this.ctx.self) return
    if (message.payload.length === 0 || message.payload[0] !== ORDER_CHANNEL) return
    // A command from someone else: its wave needs our acknowledgement.
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

  private onWave(wave: number, messages: readonly PsyncMessage[]): void {
    if (wave < this.nextWave) return // covered by a restored checkpoint
    this.inWave = true
    try {
      for (const message of messages) {
        let commands: Uint8Array[] | undefined
        try {
          commands = decodeCommandBatch(message.payload)
        } catch (error) {
          if (!(error instanceof DecodeError)) throw error
          this.counters.inc('droppedMalformed')
          this.ctx.log.warn('malformed command batch skipped', {
            id: message.id,
            error: error.message,
          })
          continue
        }
        if (commands === undefined) continue
        for (let i = 0; i < commands.length; i++) this.deliver(message, i, commands[i]!, wave)
      }
    } finally {
      this.inWave = false
    }
    this.nextWave = wave + 1
  }

  private deliver(message: PsyncMessage, index: number, command: Uint8Array, wave: number): void {
    this.delivered++
    const position: OrderPosition = { wave, delivered: this.delivered }
    const ordered: OrderedCommand = {
      id: commandId(message.id, index),
      message: message.id,
      sender: message.sender,
      command,
      position,
      restored: message.restored,
    }
    this.counters.inc('delivered')
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

  private checkpoint(): Uint8Array {
    if (this.inWave) {
      throw new OrderError(
        'NOT_AT_WAVE_BOUNDARY',
        'checkpoint() is taken between waves, not from inside a delivery',
      )
    }
    const text = JSON.stringify({
      v: CHECKPOINT_VERSION,
      wave: this.nextWave,
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
    this.nextWave = state.wave as number
    this.delivered = state.delivered as number
  }

  close(): void {
    this.closed = true
    const error = new OrderError(
      'CLOSED',
      `group ${this.ctx.group.port} closed before the command was delivered`,
    )
    for (const p of [...this.queue, ...this.waiting.values()]) p.reject(error)
    this.queue = []
    this.waiting.clear()
  }
}
