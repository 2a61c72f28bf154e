/**
 * One Failure Detection session per group.
 *
 * - Evidence of life: every frame heard from a member (the Divider's observer: messages,
 *   duplicates, held ones, control frames). Its alive messages arrive on
 *   `FAILURE_DETECTION_CHANNEL` and carry its checkpoint position.
 * - Alive messages: a Psync message after `aliveEveryMs` without an own message on the wire.
 * - Suspicion: checked every tick; `q` is suspected once its silence exceeds its timeout —
 *   `suspectAfterMs`, multiplied while Psync retransmits to or from `q` and `q` was heard
 *   from after the latest retransmission (`psync.retransmitting`: a lossy link to a live
 *   member — re-sending to a silent one is no evidence of life), while Recovery brings `q` back (`recovery.started/finished`)
 *   and while Membership decides about `q` (`membership.deciding`), plus this replica's own
 *   recent timer lateness × `localLagFactor`. A tick that itself ran more than one period
 *   late accuses nobody: what arrived during the stall has not been read yet.
 * - Weak configuration (nobody called `delegate`): a suspicion masks `q` out of Psync's
 *   agreed list here; hearing `q` again masks it back in.
 *
 * Invariants: a member is suspected at most once until heard again; every suspicion carries
 * its reason; nothing here but the framework's clock, transport-facing hooks and events.
 */
import {
  DecodeError,
  DIVIDER,
  type DividerControl,
  FAILURE_DETECTION_CHANNEL,
  type FailureDetectionControl,
  Listeners,
  type NodeId,
  PSYNC,
  type PsyncControl,
  type PsyncMessage,
  type SessionContext,
  type Suspicion,
  XKernelError,
} from '@consul/xkernel'
import { decodeAlive, encodeAlive } from './alive.js'
import { LocalHealth } from './health.js'
import type { ResolvedOptions } from './options.js'
import './trace.js'

/** Own messages remembered with the time they went on the wire (the oldest dropped beyond). */
const MAX_ON_WIRE = 4_096

interface Peer {
  readonly name: NodeId
  heardAt: number
  lastSeq: number
  suspected: boolean
  /** Until when a retransmission to or from it lengthens its timeout. */
  retransmittingUntil: number
  /** When Psync last retransmitted to or from it. */
  retransmittedAt: number
  recovering: boolean
  deciding: boolean
  checkpoint: number
  /** Heard from at least once since the group opened here. */
  everHeard: boolean
  /**
   * Suspected for not acknowledging us: hearing it is not enough to clear that — it must
   * acknowledge this own seq (the highest on the wire when it was suspected). 0: not deaf.
   */
  deafUntilAck: number
  /**
   * Since when it has been heard without a silence longer than `suspectAfterMs`: a member that
   * just started (or came back) has had no chance to acknowledge what was sent before.
   */
  heardSince: number
}

export class FailureDetectorSession {
  readonly control: FailureDetectionControl
  private readonly psync: PsyncControl
  private readonly divider: DividerControl
  private readonly peers = new Map<NodeId, Peer>()
  private readonly health: LocalHealth
  private readonly suspectHandlers = new Listeners<[Suspicion]>(
    () => new XKernelError('INVALID_ARGUMENT', 'onSuspect takes a function'),
  )
  private readonly aliveHandlers = new Listeners<[NodeId, number]>(
    () => new XKernelError('INVALID_ARGUMENT', 'onAlive takes a function'),
  )
  private delegated = false
  private checkpoint = 0
  /** The checkpoint position the last alive message carried, and when it was sent. */
  private checkpointSent = 0
  private positionSentAt = Number.NEGATIVE_INFINITY
  private lastOwnAt: number
  private nextTickAt = 0
  private closed = false
  /** The worst lateness of a tick so far (ms), for `host.stats()`. */
  private worstLate = 0
  private readonly offs: (() => void)[] = []
  /**
   * When own messages went on the wire: `[seq, at]`, increasing, the oldest dropped once
   * every peer acknowledged it (bounded by `MAX_ON_WIRE`).
   */
  private readonly onWireAt: [number, number][] = []

  constructor(
    private readonly ctx: SessionContext<{ psync: PsyncControl; divider: DividerControl }>,
    private readonly options: ResolvedOptions,
  ) {
    this.psync = ctx.get(PSYNC)
    this.divider = ctx.get(DIVIDER)
    this.health = new LocalHealth(options.healthWindowMs, options.tickMs)
    const now = ctx.clock.now()
    this.lastOwnAt = now
    for (const name of ctx.group.members) {
      if (name === ctx.self) continue
      // Everyone gets a full timeout from the start (or the restart).
      this.peers.set(name, {
        name,
        heardAt: now,
        lastSeq: 0,
        suspected: false,
        retransmittingUntil: Number.NEGATIVE_INFINITY,
        retransmittedAt: Number.NEGATIVE_INFINITY,
        recovering: false,
        deciding: false,
        checkpoint: 0,
        everHeard: false,
        deafUntilAck: 0,
        heardSince: now,
      })
    }
    this.offs.push(
      this.divider.observe((h) => this.heard(h.member, h.at, h.lastSeq)),
      this.divider.subscribe('failure-detection', {
        channels: [FAILURE_DETECTION_CHANNEL],
        deliver: (m) => this.onAlive(m),
      }),
      this.psync.onDurable((seq) => {
        const now = this.ctx.clock.now()
        this.lastOwnAt = now
        this.onWire(seq, now)
      }),
    )
    // Session-scoped: removed when the session closes.
    ctx.events.on('psync.retransmitting', (e) => {
      if (e.group !== ctx.group.port) return
      const p = this.peers.get(e.peer)
      if (p === undefined) return
      const now = this.ctx.clock.now()
      p.retransmittedAt = now
      p.retransmittingUntil = now + 4 * this.options.suspectAfterMs
    })
    ctx.events.on('recovery.started', (e) => this.flag(e.group, e.member, 'recovering', true))
    ctx.events.on('recovery.finished', (e) => this.flag(e.group, e.member, 'recovering', false))
    ctx.events.on('membership.deciding', (e) => this.flag(e.group, e.member, 'deciding', e.open))
    this.control = {
      suspected: () => [...this.peers.values()].filter((p) => p.suspected).map((p) => p.name),
      suspicionLevel: (member) => {
        if (member === ctx.self) return 0
        const p = this.peer(member)
        const now = this.ctx.clock.now()
        return (now - p.heardAt) / this.timeout(p, now).timeoutMs
      },
      timeoutOf: (member) => this.timeout(this.peer(member), this.ctx.clock.now()),
      onSuspect: (handler) => this.suspectHandlers.add(handler),
      onAlive: (handler) => this.aliveHandlers.add(handler),
      delegate: () => {
        this.delegated = true
      },
      setCheckpointPosition: (wave) => {
        if (!Number.isSafeInteger(wave) || wave < 0)
          throw new XKernelError(
            'INVALID_ARGUMENT',
            `checkpoint position must be a wave >= 0, got ${String(wave)}`,
          )
        this.checkpoint = Math.max(this.checkpoint, wave)
      },
      checkpointPositions: () =>
        Object.fromEntries([...this.peers.values()].map((p) => [p.name, p.checkpoint])),
    }
  }

  start(): void {
    this.nextTickAt = this.ctx.clock.now() + this.options.tickMs
    this.ctx.clock.setTimer(this.options.tickMs, () => this.tick())
  }

  /** Gauges for `host.stats()`. */
  gauges(): Record<string, number> {
    return {
      suspectedNow: [...this.peers.values()].filter((p) => p.suspected).length,
      localLagMs: Math.round(this.localLag()),
      worstTickLateMs: Math.round(this.worstLate),
    }
  }

  close(): void {
    this.closed = true
    for (const off of this.offs.splice(0)) off()
  }

  private peer(member: NodeId): Peer {
    const p = this.peers.get(member)
    if (p === undefined)
      throw new XKernelError(
        'INVALID_ARGUMENT',
        `${String(member)} is not another member of ${this.ctx.group.port}`,
      )
    return p
  }

  private flag(group: string, member: NodeId, what: 'recovering' | 'deciding', on: boolean): void {
    if (group !== this.ctx.group.port) return
    const p = this.peers.get(member)
    if (p !== undefined) p[what] = on
  }

  private heard(member: NodeId, at: number, lastSeq: number): void {
    const p = this.peers.get(member)
    if (p === undefined) return
    if (!p.everHeard) p.heardSince = at
    if (at > p.heardAt) p.heardAt = at
    p.everHeard = true
    if (lastSeq > p.lastSeq) p.lastSeq = lastSeq
    if (!p.suspected) return
    // It spoke all along; it is back once it acknowledges what we had sent by then.
    if (p.deafUntilAck > 0 && this.psync.acknowledgedBy(member) < p.deafUntilAck) return
    p.suspected = false
    p.deafUntilAck = 0
    this.ctx.counters.inc('alive')
    this.ctx.log.info('suspected member heard from again', { member })
    this.trace('failure-detection.alive', { member })
    if (!this.delegated) {
      try {
        this.psync.maskIn(member)
      } catch (error) {
        // Excluded by an agreed decision meanwhile: it comes back through Recovery.
        this.ctx.log.debug('not masked back in', { member, error: String(error) })
      }
    }
    this.aliveHandlers.emit(member, at)
  }

  private onAlive(message: PsyncMessage): void {
    const p = this.peers.get(message.sender)
    if (p === undefined) return
    try {
      const { checkpoint } = decodeAlive(message.payload)
      if (checkpoint > p.checkpoint) p.checkpoint = checkpoint
    } catch (error) {
      if (!DecodeError.isInstance(error)) throw error
      this.ctx.counters.inc('droppedMalformed')
    }
  }

  /** The timeout for `p` now, and what lengthened it. */
  private timeout(p: Peer, now: number): { timeoutMs: number; adaptations: string[] } {
    const o = this.options
    let timeoutMs = o.suspectAfterMs
    const adaptations: string[] = []
    // A lossy link to a live member — it was heard from after the latest retransmission —
    // not the symptom of a dead one: re-sending to a crashed member must not double the
    // failover time.
    if (now < p.retransmittingUntil && p.heardAt > p.retransmittedAt) {
      timeoutMs *= o.retransmitFactor
      adaptations.push('retransmitting')
    }
    if (p.recovering) {
      timeoutMs *= o.recoveryFactor
      adaptations.push('recovering')
    }
    if (p.deciding) {
      timeoutMs *= o.decidingFactor
      adaptations.push('deciding')
    }
    const lag = this.localLag()
    if (lag > 0 && o.localLagFactor > 0) {
      timeoutMs += lag * o.localLagFactor
      adaptations.push('local-lag')
    }
    if (!p.everHeard && timeoutMs < o.startupGraceMs) {
      timeoutMs = o.startupGraceMs
      adaptations.push('starting')
    }
    return { timeoutMs, adaptations }
  }

  /**
   * How late this replica runs: the worse of what its own ticks measured and what the clock
   * reports (`Clock.lag`: the real clock's event-loop delay, the simulator's queued timers).
   */
  private localLag(): number {
    return Math.max(this.health.lag(), this.ctx.clock.lag?.() ?? 0)
  }

  private onWire(seq: number, at: number): void {
    const last = this.onWireAt.at(-1)
    if (last !== undefined && last[0] >= seq) return
    this.onWireAt.push([seq, at])
    if (this.onWireAt.length > MAX_ON_WIRE) this.onWireAt.shift()
  }

  /**
   * How long `p` has left an own message unacknowledged: since the oldest one on the wire it
   * has not shown it holds (0 when it has them all).
   */
  private unacknowledgedFor(p: Peer, now: number): number {
    const acked = this.psync.acknowledgedBy(p.name)
    const oldest = this.onWireAt.find(([seq]) => seq > acked)
    return oldest === undefined ? 0 : now - Math.max(oldest[1], p.heardSince)
  }

  /**
   * Drops the own messages every member still in the agreed list has acknowledged (a
   * suspected one too: its oldest unacknowledged message decides whether it is back). Once
   * per tick; `unacknowledgedFor` needs no pruning to be right, only to stay short.
   */
  private forgetAcknowledged(): void {
    let floor = Number.POSITIVE_INFINITY
    for (const name of this.psync.members())
      if (name !== this.ctx.self) floor = Math.min(floor, this.psync.acknowledgedBy(name))
    while (this.onWireAt.length > 0 && this.onWireAt[0]![0] <= floor) this.onWireAt.shift()
  }

  private tick(): void {
    if (this.closed) return
    const now = this.ctx.clock.now()
    const late = this.health.tick(this.nextTickAt, now)
    this.nextTickAt = now + this.options.tickMs
    this.ctx.clock.setTimer(this.options.tickMs, () => this.tick())
    if (late > this.worstLate) this.worstLate = late
    this.sendAliveIfQuiet(now)
    // Input that waited behind this stall is not read yet: judge nobody on this tick.
    if (this.health.stalled(late)) {
      this.ctx.counters.inc('ticksStalled')
      return
    }
    // Under Membership a member left out of the agreed list was excluded for good: nobody
    // waits for it any more, so there is nothing to suspect (a masked one, in the weak
    // configuration, is still watched: hearing it again masks it back in).
    const agreed = this.delegated ? new Set(this.psync.members()) : undefined
    if (this.delegated) this.forgetAcknowledged()
    for (const p of this.peers.values()) {
      if (p.suspected || (agreed !== undefined && !agreed.has(p.name))) continue
      const silentForMs = now - p.heardAt
      const { timeoutMs, adaptations } = this.timeout(p, now)
      // Heard, but it does not hear us: as good as silent for the group (a one-way partition).
      // Under Membership only: alone, a masked-out member's messages are dropped here, and the
      // messages of members that build on them wait for good — no acknowledgement to read.
      const unacknowledgedForMs = this.delegated && p.everHeard ? this.unacknowledgedFor(p, now) : 0
      // Deaf only while it is clearly heard (within half the timeout): one we barely hear is
      // judged by its silence, or a member we cannot hear would be called deaf — and a deaf
      // suspicion is one no third member can refute.
      const deaf = unacknowledgedForMs > timeoutMs && silentForMs <= timeoutMs / 2
      if (silentForMs <= timeoutMs && !deaf) continue
      this.suspect(p, now, {
        silentForMs,
        timeoutMs,
        lastSeq: p.lastSeq,
        localLagMs: this.localLag(),
        adaptations,
        unacknowledgedForMs: deaf ? unacknowledgedForMs : 0,
      })
    }
  }

  private suspect(p: Peer, now: number, reason: Suspicion['reason']): void {
    p.suspected = true
    p.deafUntilAck =
      reason.unacknowledgedForMs > 0 ? Math.max(1, this.psync.acknowledgedBy(this.ctx.self)) : 0
    this.ctx.counters.inc('suspicions')
    this.ctx.log.warn('member suspected', { member: p.name, ...reason })
    this.trace('failure-detection.suspected', { member: p.name, reason })
    if (!this.delegated) this.psync.maskOut(p.name)
    this.suspectHandlers.emit({ member: p.name, at: now, reason })
  }

  private sendAliveIfQuiet(now: number): void {
    // A new checkpoint position goes out even when the member is busy (Recovery's prune
    // floor waits for it), at most once per period.
    const news = this.checkpoint > this.checkpointSent
    if (now - (news ? this.positionSentAt : this.lastOwnAt) < this.options.aliveEveryMs) return
    try {
      this.psync.send(encodeAlive(this.checkpoint))
      this.checkpointSent = this.checkpoint
      this.positionSentAt = now
      this.ctx.counters.inc('aliveSent')
      // Counted from now, not from when it is durable: one alive per period, not one per tick.
      this.lastOwnAt = now
    } catch (error) {
      // NOT_READY after a restart, CLOSED at the end: nothing to say yet.
      this.ctx.counters.inc('aliveNotSent')
      this.ctx.log.debug('alive message not sent', { error: String(error) })
    }
  }

  private trace<K extends 'failure-detection.suspected' | 'failure-detection.alive'>(
    kind: K,
    data: K extends 'failure-detection.suspected'
      ? { member: NodeId; reason: Suspicion['reason'] }
      : { member: NodeId },
  ): void {
    if (!this.ctx.events.has('trace.record')) return
    this.ctx.events.emit('trace.record', {
      kind,
      group: this.ctx.group.port,
      layer: 'failure-detection',
      data,
    } as never)
  }
}
