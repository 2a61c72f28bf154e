/**
 * A Lamport-clock total order over Psync, independent of waves. Each command-bearing
 * message carries its sender's Lamport timestamp; commands wait in the hold-back queue
 * until stable (no member of the agreed list can still send anything ordered before them)
 * and are delivered by (timestamp, sender, index). Every replica delivers a prefix of the
 * same key-sorted sequence: agreement without a sequencer and without waiting for waves.
 *
 * Liveness needs every member's clock to pass each command's timestamp, so a member that
 * received a command and has sent nothing since sends an acknowledgement (stamped, no
 * commands) after `ackDelayMs`. Acknowledgements never oblige anyone to answer, so an idle
 * group falls silent. Batching and that rule are `@consul/xkernel`'s `CommandBatcher` and
 * `Acknowledger`.
 *
 * Durability (the Order specification's rule): an own message counts toward stability only
 * once Psync reports it durable. Psync delivers it at once, but until it is in the log a crash
 * takes it away — and a command delivered and acknowledged on the strength of it would vanish
 * while the restarted member sends something else under its id. So the own horizon moves
 * with `psync.onDurable`, not with the local delivery.
 *
 * Never skipping a wave: the waves Psync reports are checked with `WaveSequence`; a gap (its
 * log pruned above the restored checkpoint) stops the Order with `WAVE_GAP`.
 *
 * Membership: stability is judged against `psync.members()` only — the agreed list — so an
 * excluded member stops blocking delivery at the same logical point everywhere, and a
 * suspected one keeps blocking until Membership agrees. Psync has no "list changed" event:
 * the list is read on every message and completed wave, and every `membershipRecheckMs`
 * while something is held.
 */
import {
  type Counters,
  DecodeError,
  DIVIDER,
  type DividerControl,
  Listeners,
  type NodeId,
  OPERATIONS,
  type OrderControl,
  type OrderedCommand,
  type OrderPosition,
  PSYNC,
  type PsyncControl,
  type PsyncMessage,
  type SessionContext,
  type Timer,
} from '@consul/xkernel'
import {
  Acknowledger,
  CommandBatcher,
  followPrimary,
  OrderError,
  orderedCommand,
  recordOrderDelivery,
  stopAtWaveGap,
  WaveSequence,
} from '@consul/xkernel/order'
import { decodeCheckpoint, encodeCheckpoint } from './checkpoint.js'
import { decodeStampedBatch, encodeStampedBatch, type StampedBatch } from './framing.js'
import { type HeldMessage, HoldBackQueue } from './hold-back-queue.js'
import { LamportClock } from './lamport-clock.js'
import type { ResolvedOptions } from './options.js'
import { StabilityTracker } from './stability.js'
import { type CommandKey, compareStamps, type Stamp } from './stamp.js'

export class LamportOrderSession {
  readonly control: OrderControl
  private readonly psync: PsyncControl
  private readonly counters: Counters
  private readonly clock = new LamportClock()
  private readonly stability = new StabilityTracker()
  private readonly holdBack = new HoldBackQueue()
  /** Own stamps delivered but not yet durable, in seq order: they move our horizon later. */
  private readonly ownNotDurable: { readonly seq: number; readonly timestamp: number }[] = []
  private readonly waves = new WaveSequence()
  private stopped = false
  private floorChecked = false
  /** The highest stamp this member has sent (in this incarnation, or replayed from its log). */
  private sentStamp = 0
  /** Depth of the last Psync message (any channel) from each member: its next is deeper. */
  private readonly lastDepth = new Map<NodeId, number>()
  private readonly batcher: CommandBatcher
  private readonly acks: Acknowledger
  private readonly handlers = new Listeners<[OrderedCommand]>(
    () => new OrderError('INVALID_ARGUMENT', 'onDeliver takes a function'),
  )
  private recheckTimer: Timer | undefined
  /** The highest stamp of a command from another member: our clock must pass it. */
  private owed: Stamp | undefined
  /** The last command delivered (or covered by the restored checkpoint). */
  private last: CommandKey | undefined
  /** What the restored checkpoint covers, to tell replayed commands from late ones. */
  private restoredUpTo: CommandKey | undefined
  private delivered = 0
  /** Lower bound for `position().wave` from a restored checkpoint. */
  private waveFloor = 0
  private membersSeen = ''
  /** Re-entrancy: a delivery handler or our own `psync.send` can deliver messages to us. */
  private draining = false
  private sending = false
  private drainAgain = false
  private closed = false

  constructor(
    private readonly ctx: SessionContext<{ psync: PsyncControl; divider: DividerControl }>,
    private readonly options: ResolvedOptions,
  ) {
    this.psync = ctx.get(PSYNC)
    this.counters = ctx.counters
    this.batcher = new CommandBatcher(ctx, {
      maxBatch: options.maxBatch,
      maxBatchBytes: options.maxBatchBytes,
      error: (code, message, details) => new OrderError(code, message, details),
      // One stamped message per batch (which also acknowledges).
      send: (batch) =>
        this.send(
          encodeStampedBatch(
            this.clock.next(),
            batch.map((c) => c.command),
          ),
        ),
      // Deliver what the send made deliverable, now that the batch's ids are awaited.
      afterSend: () => this.drain(),
    })
    // Acknowledge a command we received and have not answered — it lets Psync's stability
    // and waves advance too — and, after a restart, any command our (replayed) clock still
    // blocks: our horizon is at or below it.
    this.acks = new Acknowledger(ctx, {
      ackDelayMs: options.ackDelayMs,
      // Judged by what we sent, durable or not: a stamp on its way to the log still answers.
      owes: () =>
        this.owed !== undefined &&
        compareStamps(this.owed, { timestamp: this.sentStamp + 1, sender: this.ctx.self }) >= 0,
      flush: () => this.batcher.flush(),
      sendAck: () => {
        this.send(encodeStampedBatch(this.clock.next(), []))
        this.drain()
      },
    })
    // No new submits outside the primary partition (only Membership raises it).
    followPrimary(ctx, this.batcher)
    // Registered at open, so the replay of Psync's log (in its start) is seen too. Through the
    // Divider (specification v2): our channel's messages, and every wave. Waves are not used
    // for ordering, but Psync completes stalled waves right after an agreed exclusion: a cue
    // to look at members() again before the next message arrives.
    ctx.get(DIVIDER).subscribe('order-lamport', {
      channels: [OPERATIONS],
      deliver: (m) => this.onMessage(m),
      wave: (wave) => this.onWave(wave),
    })
    this.psync.onDurable((seq) => this.ownDurable(seq))
    this.psync.onStable((sender, seq) => {
      if (sender === ctx.self) this.batcher.stableUpTo(seq)
    })
    this.control = {
      specificationVersion: 'v2',
      semantics: 'total',
      submit: (command, options) => this.batcher.submit(command, options),
      onDeliver: (handler) => this.handlers.add(handler),
      position: () => ({ wave: this.wave(), delivered: this.delivered }),
      // The delivered set is always a prefix of the key order and the checkpoint records
      // the exact last key, so every point is a consistent cut — even inside a handler.
      atWaveBoundary: () => true,
      checkpoint: () => this.checkpoint(),
      restore: (bytes) => this.restore(bytes),
    }
  }

  // ---- submit and send ------------------------------------------------------------------------

  /**
   * Sends through Psync, which delivers the message to us at once: hold delivery until the
   * caller has recorded what it needs (the ids of the commands it waits for).
   */
  private send(payload: Uint8Array): PsyncMessage {
    this.sending = true
    try {
      const message = this.psync.send(payload)
      this.acks.sent()
      return message
    } finally {
      this.sending = false
    }
  }

  // ---- receive and deliver --------------------------------------------------------------------

  private onMessage(message: PsyncMessage): void {
    if (this.closed || this.stopped) return
    if (message.restored && !this.floorChecked) {
      // The replay after a restart starts above Psync's pruned prefix: commands below it are
      // gone unless the restored checkpoint covers them. Check before delivering any.
      this.floorChecked = true
      const floor = this.psync.waveFloor()
      if (floor > this.waves.next) {
        this.stop(floor)
        return
      }
    }
    const depth = this.lastDepth.get(message.sender)
    if (depth === undefined || message.depth > depth)
      this.lastDepth.set(message.sender, message.depth)
    let batch: StampedBatch | undefined
    try {
      batch = decodeStampedBatch(message.payload)
    } catch (error) {
      if (!DecodeError.isInstance(error)) throw error
      // Every replica sees the same bytes and drops the same message: still agreement.
      this.counters.inc('droppedMalformed')
      this.ctx.log.warn('malformed order message dropped', {
        id: message.id,
        error: error.message,
      })
    }
    if (batch !== undefined) this.ingest(message, batch)
    this.drain()
    this.acks.schedule()
  }

  /** Never skip a wave: a gap stops the Order (the waves themselves order nothing here). */
  private onWave(wave: number): void {
    if (this.stopped) return
    if (this.waves.see(wave) === 'gap') this.stop(wave)
    else this.drain()
  }

  /** A gap before `wave`: stop for good, loudly, before delivering anything from past it. */
  private stop(wave: number): void {
    this.stopped = true
    const error = new OrderError('WAVE_GAP', this.waves.gapMessage(this.ctx.group.port, wave))
    stopAtWaveGap(this.ctx, { batcher: this.batcher, acks: this.acks }, error, {
      expected: this.waves.next,
      reported: wave,
    })
  }

  /** Own messages up to `seq` are durable: their stamps now count for our horizon. */
  private ownDurable(seq: number): void {
    let moved = false
    while (this.ownNotDurable.length > 0 && this.ownNotDurable[0]!.seq <= seq) {
      const { timestamp } = this.ownNotDurable.shift()!
      this.stability.observe(this.ctx.self, timestamp)
      moved = true
    }
    if (moved) this.drain()
  }

  private ingest(message: PsyncMessage, batch: StampedBatch): void {
    this.clock.witness(batch.timestamp)
    if (message.sender === this.ctx.self && batch.timestamp > this.sentStamp)
      this.sentStamp = batch.timestamp
    if (message.sender === this.ctx.self && !message.restored && !this.psync.durable(message.id)) {
      // Counts once durable (`ownDurable`); own stamps increase by construction.
      this.ownNotDurable.push({ seq: message.seq, timestamp: batch.timestamp })
    } else if (!this.stability.observe(message.sender, batch.timestamp)) {
      this.counters.inc('droppedOutOfOrder')
      this.ctx.log.warn('order message dropped: its timestamp does not exceed its sender’s last', {
        id: message.id,
        timestamp: batch.timestamp,
        previous: this.stability.lastFrom(message.sender),
      })
      return
    }
    if (batch.commands.length === 0) return
    const stamp: Stamp = { timestamp: batch.timestamp, sender: message.sender }
    if (message.sender !== this.ctx.self) {
      if (!message.restored) this.acks.owe()
      if (this.owed === undefined || compareStamps(stamp, this.owed) > 0) this.owed = stamp
    }
    let next = 0
    if (this.last !== undefined) {
      const order = compareStamps(stamp, this.last)
      if (order < 0 || (order === 0 && this.last.index >= batch.commands.length - 1)) {
        this.skip(message, stamp)
        return
      }
      if (order === 0) next = this.last.index + 1
    }
    this.holdBack.insert({ stamp, message, commands: batch.commands, next })
  }

  /** A message ordered at or before what is already delivered. */
  private skip(message: PsyncMessage, stamp: Stamp): void {
    if (this.restoredUpTo !== undefined && compareStamps(stamp, this.restoredUpTo) <= 0) {
      this.counters.inc('skippedCovered')
      return
    }
    // Cannot happen with well-formed senders (stamps strictly increase and stability
    // waited for them); counted, because delivering it now would break agreement.
    this.counters.inc('droppedLate')
    this.ctx.log.warn('order message arrived after later commands were delivered; dropped', {
      id: message.id,
      timestamp: stamp.timestamp,
    })
  }

  /** Delivers every stable held message, in key order. */
  private drain(): void {
    if (this.stopped) return
    if (this.draining || this.sending || this.closed) {
      this.drainAgain = true
      return
    }
    this.draining = true
    try {
      do {
        this.drainAgain = false
        const members = this.psync.members()
        this.dropDiscarded(members)
        for (let head = this.holdBack.peek(); head !== undefined; head = this.holdBack.peek()) {
          if (!this.stability.isStable(head.stamp, members)) break
          this.deliverMessage(head)
        }
      } while (this.drainAgain && !this.closed)
    } finally {
      this.draining = false
    }
    if (this.holdBack.size > 0) this.scheduleRecheck()
  }

  /** Something waits: look at members() again later even if no message or wave comes. */
  private scheduleRecheck(): void {
    if (this.recheckTimer !== undefined || this.closed) return
    this.recheckTimer = this.ctx.clock.setTimer(this.options.membershipRecheckMs, () => {
      this.recheckTimer = undefined
      this.drain()
    })
  }

  /**
   * After an agreed exclusion Psync discards the excluded member's messages beyond the cut;
   * held ones must go too (they are gone everywhere). Checked when the list changes.
   */
  private dropDiscarded(members: readonly NodeId[]): void {
    const signature = members.join('\u0000')
    if (signature === this.membersSeen) return
    this.membersSeen = signature
    const current = new Set(members)
    const dropped = this.holdBack.remove(
      (item) =>
        !current.has(item.message.sender) &&
        this.psync.get(item.message.id) === undefined &&
        !this.psync.stable(item.message.id),
    )
    if (dropped > 0) {
      this.counters.inc('droppedExcluded', dropped)
      this.ctx.log.info('held messages of an excluded member beyond its cut dropped', {
        count: dropped,
      })
    }
  }

  private deliverMessage(held: HeldMessage): void {
    const { message, commands, stamp } = held
    const lastIndex = commands.length - 1
    // Psync depths: while this message is partly delivered it still holds the wave back.
    const waveAfter = this.wave(true)
    const waveDuring = Math.min(waveAfter, Math.max(message.depth, this.waveFloor))
    while (held.next <= lastIndex) {
      const index = held.next++
      if (index === lastIndex) this.holdBack.shift()
      this.delivered++
      this.last = { timestamp: stamp.timestamp, sender: stamp.sender, index }
      const position: OrderPosition = {
        wave: index === lastIndex ? waveAfter : waveDuring,
        delivered: this.delivered,
      }
      this.deliverCommand(message, index, commands[index]!, position)
    }
  }

  private deliverCommand(
    message: PsyncMessage,
    index: number,
    command: Uint8Array,
    position: OrderPosition,
  ): void {
    const ordered = orderedCommand(message, index, command, position)
    recordOrderDelivery(this.ctx, ordered, message.depth)
    // Settled after the handlers, even if one of them closes the group.
    const resolve = this.batcher.take(ordered.id)
    this.handlers.emit(ordered)
    resolve?.(ordered)
  }

  /**
   * `position().wave`, in Psync's unit (depth), as the spec defines it: every command of
   * the waves below it has been delivered. Psync delivers each member's messages in order
   * with increasing depth, so member q's next message is deeper than its last; the bound is
   * the shallower of that for every agreed member and the shallowest held message.
   * `headDelivered`: the head of the queue is being delivered and no longer holds it back.
   */
  private wave(headDelivered = false): number {
    let wave = this.holdBack.minDepth(headDelivered ? 1 : 0)
    for (const q of this.psync.members()) wave = Math.min(wave, (this.lastDepth.get(q) ?? -1) + 1)
    return Math.max(wave, this.waveFloor)
  }

  // ---- checkpoint, restore, close -------------------------------------------------------------

  private checkpoint(): Uint8Array {
    return encodeCheckpoint({
      last: this.last,
      delivered: this.delivered,
      wave: this.wave(),
      clock: this.clock.now,
    })
  }

  private restore(bytes: Uint8Array): void {
    const state = decodeCheckpoint(bytes)
    if (this.delivered > 0 || this.last !== undefined) {
      throw new OrderError(
        'RESTORE_TOO_LATE',
        'restore() must be called when the group opens, before the Order has delivered anything',
      )
    }
    this.last = state.last
    this.restoredUpTo = state.last
    this.delivered = state.delivered
    this.waveFloor = state.wave
    this.waves.restoreTo(state.wave)
    this.clock.advanceTo(state.clock)
    const covered = state.last
    if (covered === undefined) return
    // Anything Psync already handed us (normally nothing: restore comes at open).
    const skipped = this.holdBack.remove((item) => {
      const order = compareStamps(item.stamp, covered)
      if (order === 0) item.next = Math.max(item.next, covered.index + 1)
      return order < 0 || item.next >= item.commands.length
    })
    this.counters.inc('skippedCovered', skipped)
  }

  close(): void {
    this.closed = true
    this.acks.close()
    this.batcher.close()
    this.recheckTimer?.cancel()
  }
}
