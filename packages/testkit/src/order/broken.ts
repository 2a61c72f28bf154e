/**
 * Broken Orders the conformance suite must reject, shipped so that anyone can see it has
 * teeth (`orderSuiteTeeth`). Each is the reference wave order below with one fault:
 *
 * | fault | what it does wrong | the check that rejects it |
 * |---|---|---|
 * | `skip-wave` | n2 skips the first command-bearing wave from wave 3 on | total-order agreement |
 * | `swap` | n2 delivers two commands of one wave in the other order | total-order agreement |
 * | `duplicate` | n2 delivers a command twice | no duplication |
 * | `reuse-id` | n2 delivers a command with other bytes under its id | no creation |
 * | `wrong-position` | n2's positions skip a number | positions |
 * | `causal-inversion` | every replica delivers each pair of waves in reverse | causal order |
 * | `unsafe-ack` | resolves every submit as soon as it is sent | validity |
 * | `early-boundary` (semantic) | n2 delivers a command of the next wave early and still claims a wave boundary | stable cuts |
 * | `safe-as-agreed` | resolves `'safe'` submits at local delivery, like `'agreed'` | validity (an excluded member's own commands) |
 * | `own-before-durable` | delivers its own commands the moment Psync hands them back, before they are durable | durability |
 * | `ignore-gap` | delivers past a gap in the wave sequence instead of stopping | wave gap |
 * | `lose-command` (semantic) | n2 never delivers one command | liveness |
 * | `semantic-swap` (semantic, everything conflicts) | n2 delivers two commands of one wave in the other order | semantic agreement |
 *
 * The reference itself (`referenceOrder()`) is a correct total order: complete waves in
 * order, each by sender, acknowledgements, both delivery levels, checkpoints, the
 * never-skip-a-wave rule — it passes the whole suite.
 */
import {
  DecodeError,
  defineProtocol,
  Listeners,
  ORDER,
  ORDER_CHANNEL,
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
  OrderError,
  orderedCommand,
  stopAtWaveGap,
  WaveSequence,
} from '@consul/xkernel/order'

export type BrokenOrderFault =
  | 'skip-wave'
  | 'swap'
  | 'duplicate'
  | 'reuse-id'
  | 'wrong-position'
  | 'causal-inversion'
  | 'unsafe-ack'
  | 'early-boundary'
  | 'safe-as-agreed'
  | 'own-before-durable'
  | 'ignore-gap'
  | 'lose-command'
  | 'semantic-swap'

export const BROKEN_ORDER_FAULTS: readonly BrokenOrderFault[] = [
  'skip-wave',
  'swap',
  'duplicate',
  'reuse-id',
  'wrong-position',
  'causal-inversion',
  'unsafe-ack',
  'early-boundary',
  'safe-as-agreed',
  'own-before-durable',
  'ignore-gap',
  'lose-command',
  'semantic-swap',
]

/** The check each broken Order must fail (the first word of its problems, in brackets). */
export const EXPECTED_CHECK: Readonly<Record<BrokenOrderFault, string>> = {
  'skip-wave': 'total-order agreement',
  swap: 'total-order agreement',
  duplicate: 'no duplication',
  'reuse-id': 'no creation',
  'wrong-position': 'positions',
  'causal-inversion': 'causal order',
  'unsafe-ack': 'validity',
  'early-boundary': 'stable cuts',
  'safe-as-agreed': 'validity',
  'own-before-durable': 'durability',
  'ignore-gap': 'wave gap',
  'lose-command': 'liveness',
  'semantic-swap': 'semantic agreement',
}

/** The semantics a broken Order declares (the suite then needs `conflicts`, see `conflictsOf`). */
const SEMANTIC: ReadonlySet<BrokenOrderFault> = new Set([
  'early-boundary',
  'lose-command',
  'semantic-swap',
])

/** What conflicts for the semantic broken Orders (`undefined`: a total order). */
export function conflictsOf(
  fault: BrokenOrderFault,
): ((a: Uint8Array, b: Uint8Array) => boolean) | undefined {
  if (fault === 'semantic-swap') return () => true
  return SEMANTIC.has(fault) ? () => false : undefined
}

/** The scenario kind in which a broken Order's fault shows. */
export function kindOf(fault: BrokenOrderFault): 'calm' | 'membership' | 'gap' {
  if (fault === 'unsafe-ack' || fault === 'safe-as-agreed') return 'membership'
  if (fault === 'ignore-gap') return 'gap'
  return 'calm'
}

/** The node a one-replica fault hits. */
const VICTIM = 'n2'

class ReferenceSession {
  readonly control: OrderControl
  private readonly psync: PsyncControl
  private readonly batcher: CommandBatcher
  private readonly acks: Acknowledger
  private readonly handlers = new Listeners<[OrderedCommand]>()
  private waves = new WaveSequence()
  private delivered = 0
  private inWave = false
  private stopped = false
  /** causal-inversion: an even wave waiting for the odd one after it. */
  private heldWave: { wave: number; messages: readonly PsyncMessage[] } | undefined
  /** early-boundary: a command delivered before its wave; skipped when the wave comes. */
  private early: string | undefined
  private faultDone = false
  private lastSent: { message: PsyncMessage; commands: Uint8Array[] } | undefined

  constructor(
    private readonly ctx: SessionContext<{ psync: PsyncControl }>,
    private readonly fault: BrokenOrderFault | undefined,
  ) {
    this.psync = ctx.get(PSYNC)
    const victim = ctx.self === VICTIM
    this.batcher = new CommandBatcher(ctx, {
      maxBatch: 256,
      maxBatchBytes: 64 * 1024,
      error: (code, message) => new OrderError(code, message),
      send: (batch) => {
        const message = this.send(encodeCommandBatch(batch.map((c) => c.command)))
        this.lastSent = { message, commands: batch.map((c) => c.command) }
        return message
      },
      afterSend: () => {
        if (fault !== 'unsafe-ack' || this.lastSent === undefined) return
        // Broken: settled as soon as sent, before anything is known of the command.
        const { message, commands } = this.lastSent
        commands.forEach((command, i) => {
          const settle = this.batcher.take(`${message.id}/${i}`)
          settle?.(orderedCommand(message, i, command, this.position()))
          this.batcher.stableUpTo(message.seq)
        })
      },
    })
    this.acks = new Acknowledger(ctx, {
      ackDelayMs: 1,
      flush: () => this.batcher.flush(),
      sendAck: () => this.send(new Uint8Array(0)),
    })
    this.psync.onDeliver((m) => {
      if (m.sender !== ctx.self && m.payload[0] === ORDER_CHANNEL) this.acks.received()
      // own-before-durable: broken — its own commands delivered as soon as they are sent.
      if (fault === 'own-before-durable' && m.sender === ctx.self && !m.restored)
        this.commandsOf(m).forEach((command, index) => {
          this.emit(m, index, command)
        })
    })
    this.psync.onWave((wave, messages) => this.onWave(wave, messages, victim))
    this.psync.onStable((sender, seq) => {
      if (sender === ctx.self) this.batcher.stableUpTo(seq)
    })
    this.control = {
      specificationVersion: 'v1',
      semantics: fault !== undefined && SEMANTIC.has(fault) ? 'semantic' : 'total',
      // safe-as-agreed: broken — every submit settles at local delivery.
      submit: (command, options) =>
        this.batcher.submit(command, fault === 'safe-as-agreed' ? { level: 'agreed' } : options),
      onDeliver: (handler) => this.handlers.add(handler),
      position: () => this.position(),
      atWaveBoundary: () => !this.inWave && this.heldWave === undefined,
      checkpoint: () =>
        new TextEncoder().encode(
          JSON.stringify({ wave: this.waves.next, delivered: this.delivered }),
        ),
      restore: (bytes) => {
        const state = JSON.parse(new TextDecoder().decode(bytes)) as {
          wave: number
          delivered: number
        }
        this.waves.restoreTo(state.wave)
        this.delivered = state.delivered
      },
    }
  }

  private position() {
    return { wave: this.waves.next, delivered: this.delivered }
  }

  private send(payload: Uint8Array): PsyncMessage {
    const message = this.psync.send(payload)
    this.acks.sent()
    return message
  }

  private commandsOf(message: PsyncMessage): Uint8Array[] {
    try {
      return decodeCommandBatch(message.payload) ?? []
    } catch (error) {
      if (DecodeError.isInstance(error)) return []
      throw error
    }
  }

  private onWave(wave: number, messages: readonly PsyncMessage[], victim: boolean): void {
    if (this.stopped) return
    const verdict = this.waves.see(wave)
    if (verdict === 'covered') return
    if (verdict === 'gap' && this.fault === 'ignore-gap') {
      // Broken: jump the gap and deliver on.
      this.waves = new WaveSequence(wave + 1)
    } else if (verdict === 'gap') {
      this.stopped = true
      const error = new OrderError('WAVE_GAP', this.waves.gapMessage(this.ctx.group.port, wave))
      stopAtWaveGap(this.ctx, { batcher: this.batcher, acks: this.acks }, error, {
        expected: this.waves.next,
        reported: wave,
      })
      return
    }
    const fault = this.fault
    const carries = messages.some((m) => this.commandsOf(m).length > 0)
    if (fault === 'causal-inversion') {
      if (this.heldWave === undefined && wave % 2 === 0) {
        this.heldWave = { wave, messages }
        return
      }
      this.deliverWave(wave, messages)
      const held = this.heldWave
      this.heldWave = undefined
      if (held !== undefined) this.deliverWave(held.wave, held.messages)
      return
    }
    if (victim && fault === 'skip-wave' && !this.faultDone && wave >= 3 && carries) {
      this.faultDone = true
      return
    }
    this.deliverWave(wave, messages)
    if (victim && fault === 'early-boundary' && !this.faultDone) {
      // Deliver the first command the graph holds of the next wave, and say "boundary".
      const next = this.psync.wave(wave + 1).find((m) => this.commandsOf(m).length > 0)
      if (next !== undefined) {
        this.faultDone = true
        this.early = `${next.id}/0`
        this.emit(next, 0, this.commandsOf(next)[0]!)
      }
    }
  }

  private deliverWave(_wave: number, messages: readonly PsyncMessage[]): void {
    this.inWave = true
    try {
      let list: { message: PsyncMessage; index: number; command: Uint8Array }[] = []
      for (const message of messages)
        this.commandsOf(message).forEach((command, index) => {
          list.push({ message, index, command })
        })
      const victim = this.ctx.self === VICTIM
      const fault = this.fault
      if (victim && !this.faultDone && list.length >= 2) {
        if (
          (fault === 'swap' || fault === 'semantic-swap') &&
          list[0]!.message.id !== list[1]!.message.id
        ) {
          this.faultDone = true
          list = [list[1]!, list[0]!, ...list.slice(2)]
        }
      }
      for (const { message, index, command } of list) {
        if (`${message.id}/${index}` === this.early) continue
        if (fault === 'own-before-durable' && message.sender === this.ctx.self) continue
        if (victim && !this.faultDone && fault === 'lose-command' && this.delivered > 5) {
          this.faultDone = true
          continue
        }
        if (victim && !this.faultDone && fault === 'duplicate') {
          this.faultDone = true
          this.emit(message, index, command)
        }
        if (victim && !this.faultDone && fault === 'reuse-id') {
          this.faultDone = true
          const other = command.slice()
          other[0] = (other[0] ?? 0) ^ 0xff
          this.emit(message, index, other)
          continue
        }
        if (victim && !this.faultDone && fault === 'wrong-position' && this.delivered > 5) {
          this.faultDone = true
          this.delivered++
        }
        this.emit(message, index, command)
      }
    } finally {
      this.inWave = false
    }
  }

  private emit(message: PsyncMessage, index: number, command: Uint8Array): void {
    this.delivered++
    const ordered = orderedCommand(message, index, command, this.position())
    this.ctx.counters.inc('delivered')
    this.handlers.emit(ordered)
    if (message.sender === this.ctx.self) this.batcher.deliveredAt(message.id, index, ordered)
  }

  close(): void {
    this.acks.close()
    this.batcher.close()
  }
}

function order(fault: BrokenOrderFault | undefined, name: string) {
  return defineProtocol({
    name,
    requires: [PSYNC],
    provides: [ORDER],
    raises: ['trace.sent'],
    create: () => ({
      open(ctx) {
        const session = new ReferenceSession(ctx, fault)
        return { controls: { order: session.control }, close: () => session.close() }
      },
    }),
  })
}

/** A small, correct total order on waves: the baseline the broken ones are made from. */
export function referenceOrder() {
  return order(undefined, 'order-reference')
}

/** The reference order with `fault`. */
export function brokenOrder(fault: BrokenOrderFault) {
  return order(fault, `order-broken-${fault}`)
}
