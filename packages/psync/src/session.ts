/**
 * One Psync conversation, composed from its parts: the member list (`members.ts`), the own
 * chain (`own-chain.ts`), the receive path (`receive.ts`), repair (`repair.ts`, with the
 * wants of `retransmit.ts`), re-sending own messages (`resend.ts`), stability
 * (`stability.ts`), waves and the prune floor (`waves.ts`), the restart handshake and the
 * rebuild from the log (`restart.ts`), delivery (`delivery.ts`), messages parked pending a
 * decision (`parked.ts`) and the control interface (`control.ts`). This file holds what
 * ties them: the one insert path, the send path, exclusion, and pruning.
 *
 * Invariants the simulator checks: causal delivery, no duplicate delivery, no creation (an
 * id never stands for two contents: a restarted member takes its next seq above its durable
 * high-water mark), atomic delivery among correct members, stability never claimed for a
 * message an agreed member lacks, identical wave contents everywhere and no wave skipped
 * (a restart replays every wave above the prune floor; an exclusion cut counts the same
 * messages everywhere).
 */
import {
  type Counters,
  digestBytes,
  type GroupNetwork,
  Listeners,
  type NodeId,
  type PsyncControl,
  type PsyncMessage,
  type SessionContext,
  type Timer,
} from '@consul/xkernel'
import { directMessage, encodeDataWithPayload, wireMessage } from './codec.js'
import { ContextGraph, type GraphNode } from './context-graph.js'
import { makeControl } from './control.js'
import { type Conversation, type KeptFrame, lastOf } from './conversation.js'
import { Delivery } from './delivery.js'
import { PsyncError } from './errors.js'
import { HeldMessages } from './held.js'
import { MessageLog } from './log.js'
import { exclude } from './member-changes.js'
import { MemberList } from './members.js'
import type { ResolvedOptions } from './options.js'
import { OwnChain } from './own-chain.js'
import { ParkedMessages } from './parked.js'
import { PeerBudget } from './peer-budget.js'
import { Receiver } from './receive.js'
import { Repair } from './repair.js'
import { OwnResender } from './resend.js'
import { RestartHandshake } from './restart.js'
import { MissingTracker } from './retransmit.js'
import { Stability, type StabilityInputs } from './stability.js'
import { type WaveInputs, WaveTracker, waveComplete } from './waves.js'

export class PsyncSession implements Conversation {
  readonly control: PsyncControl
  readonly members: MemberList
  readonly graph: ContextGraph
  readonly held: HeldMessages
  readonly wants: MissingTracker
  readonly log: MessageLog
  readonly net: GroupNetwork
  readonly counters: Counters
  readonly own: OwnChain
  readonly waves: WaveTracker
  readonly stability: Stability
  readonly delivery: Delivery
  readonly repair: Repair
  readonly resender: OwnResender
  readonly restart: RestartHandshake
  readonly parked: ParkedMessages
  readonly receiver: Receiver
  closed = false
  private pruneTimer: Timer | undefined
  private readonly waveInputs: WaveInputs
  private readonly stabilityInputs: StabilityInputs
  readonly waveHandlers = new Listeners<[number, readonly PsyncMessage[]]>(
    () => new PsyncError('INVALID_ARGUMENT', 'onWave takes a function'),
  )
  readonly memberHandlers = new Listeners<[readonly NodeId[]]>(
    () => new PsyncError('INVALID_ARGUMENT', 'onMembersChanged takes a function'),
  )
  readonly stableHandlers = new Listeners<[NodeId, number]>(
    () => new PsyncError('INVALID_ARGUMENT', 'onStable takes a function'),
  )
  readonly durableHandlers = new Listeners<[number]>(
    () => new PsyncError('INVALID_ARGUMENT', 'onDurable takes a function'),
  )

  constructor(
    readonly ctx: SessionContext<Record<never, never>>,
    readonly options: ResolvedOptions,
  ) {
    // Wire indexes are positions in the canonical list, whatever order the caller wrote.
    this.members = new MemberList(ctx.group.members, ctx.self, ctx.group.port)
    const n = this.members.size
    this.graph = new ContextGraph(n)
    this.held = new HeldMessages(options.maxHeld, options.maxHeldBytes)
    this.wants = new MissingTracker(options, this.members.self, ctx.random)
    this.counters = ctx.counters
    this.log = new MessageLog(
      ctx.storage,
      ctx.clock,
      options.logEveryMs,
      ctx.counters,
      ctx.log,
      ctx.group.port,
    )
    this.own = new OwnChain(ctx.group.port, ctx.log)
    this.waves = new WaveTracker(options.retainWaves)
    this.stability = new Stability(n, this.members.self)
    const delivery =
      (ctx.group.options.psync as { delivery?: unknown } | undefined)?.delivery ?? options.delivery
    if (delivery !== 'callback' && delivery !== 'iterator') {
      throw new PsyncError(
        'INVALID_ARGUMENT',
        `psync delivery must be 'callback' or 'iterator', got ${String(delivery)}`,
      )
    }
    this.delivery = new Delivery(ctx, this.members.names, delivery === 'iterator')
    this.parked = new ParkedMessages(options.maxHeld)
    // A want for a parked message is answered by the decision, not by asking for it again.
    // One budget per peer for everything its frames make us send (answers, re-sends).
    const budget = new PeerBudget(n, options.repairBytesPerSecondPerPeer, options.repairBurstBytes)
    this.repair = new Repair(this, budget, (r) => this.parked.has(r.member, r.seq))
    this.resender = new OwnResender(this, budget)
    this.restart = new RestartHandshake(
      this,
      this.repair,
      this.waves,
      (p, s) => this.receiver.absurd(p, s),
      (p, cut) => this.reapplyExclusion(p, cut),
    )
    this.receiver = new Receiver(this, this.repair, this.resender, this.restart, this.parked)
    const graph = this.graph
    const members = this.members
    this.waveInputs = {
      memberCount: n,
      active: members.active,
      cut: members.cut,
      memberDepth: (p) => lastOf(this, p)?.depth ?? graph.prunedDepth[p]!,
      has: (p, seq) => graph.has(p, seq),
    }
    this.stabilityInputs = {
      active: members.active,
      knows: (q, p) => {
        const last = lastOf(this, q)
        return last === undefined ? graph.prunedVc[q]![p]! : last.vc[p]!
      },
      knownSeq: (p) => this.knownSeq(p),
    }
    this.net = ctx.claimNetwork()
    this.net.onReceive((from, msg) => this.receiver.receive(from, msg))
    this.control = makeControl(this)
  }

  /** Called once every session of the group exists. */
  start(): void {
    // A log on disk means this member took part before (a restart, or a group closed and
    // opened again): rebuild from it and ask a peer for what it missed meanwhile.
    const restored = this.restart.restore()
    if (this.own.mySeq > 0) this.resender.arm()
    if (this.ctx.group.restoring || restored > 0) this.restart.begin()
    this.armExpiry()
  }

  async close(): Promise<void> {
    await this.log.close()
    this.closed = true
    this.delivery.close()
  }

  // ---- the shared operations (Conversation) ------------------------------------------------

  accept(first: KeptFrame, restored: boolean, waiting: HeldMessages = this.held): void {
    const self = this.members.self
    const work: KeptFrame[] = [first]
    const onHold = (m: number) => this.parked.isOnHold(m)
    for (let frame = work.pop(); frame !== undefined; frame = work.pop()) {
      // Released from waiting in this same loop, but a delivery just above put its sender on
      // hold (Membership deciding about it): it waits for the decision too — unless a message
      // of a member not on hold still waits for it.
      if (
        frame !== first &&
        !restored &&
        onHold(frame.sender) &&
        !waiting.isWanted(frame.sender, frame.seq, onHold)
      ) {
        if (this.parked.park(frame)) this.counters.inc('parked')
        else this.counters.inc('droppedParkedOverflow')
        continue
      }
      // An own message of an earlier incarnation, fetched back from a peer, is a replay too.
      const node = this.graph.insert(
        frame.sender,
        frame.seq,
        frame.deps,
        frame.payload,
        restored || frame.sender === self,
        frame.frame,
      )
      // A frame from the log (restored, or held after a restore until its deps came) is
      // already in the log under its key.
      if (frame.logKey !== undefined) {
        node.logged = true
        node.logKey = frame.logKey
      } else if (restored) node.logged = true
      else this.log.append(node)
      this.wants.resolved(frame.sender, frame.seq)
      if (frame.sender === self) this.own.recovered(frame.seq)
      this.delivery.deliver(node)
      this.afterInsert(node)
      for (const ready of waiting.release(frame.sender, frame.seq)) work.push(ready)
    }
  }

  knownSeq(p: number): number {
    return Math.max(this.graph.last[p]?.seq ?? 0, this.graph.prunedSeq[p]!)
  }

  have(): number[] {
    return this.members.names.map((_, p) => this.knownSeq(p))
  }

  acknowledged(q: number, seq: number): void {
    this.resender.acknowledged(q, seq)
  }

  advance(): void {
    this.advanceStability()
    this.advanceWaves()
  }

  private afterInsert(node: GraphNode): void {
    if (node.sender !== this.members.self)
      this.acknowledged(node.sender, node.vc[this.members.self]!)
    this.advance()
  }

  private advanceStability(): void {
    this.stability.advance(this.stabilityInputs, this.own.transmittedSeq, this.stabilityGrew)
  }

  /** Member `member`'s messages with seq in (before, seq] became stable. */
  private readonly stabilityGrew = (member: number, before: number, seq: number): void => {
    if (this.ctx.events.has('trace.stable')) {
      for (const s of this.graph.range(member, before, seq)) {
        this.ctx.events.emit('trace.stable', {
          group: this.ctx.group.port,
          layer: 'psync',
          id: this.members.idOf(member, s.seq),
        })
      }
    }
    if (this.stableHandlers.size > 0) this.stableHandlers.emit(this.members.name(member), seq)
  }

  isWaveComplete(depth: number): boolean {
    return depth < this.waves.next || waveComplete(depth, this.waveInputs)
  }

  private advanceWaves(): void {
    this.waves.advance(this.waveInputs, this.waveCompleted)
    this.armPrune()
  }

  /** Wave `wave` is complete: trace it and hand it up. */
  private readonly waveCompleted = (wave: number): void => {
    const nodes = this.sortedWave(wave)
    if (this.ctx.events.has('trace.wave')) {
      this.ctx.events.emit('trace.wave', {
        group: this.ctx.group.port,
        layer: 'psync',
        wave,
        ids: nodes.map((n) => this.members.idOf(n.sender, n.seq)),
      })
    }
    if (this.waveHandlers.size > 0)
      this.waveHandlers.emit(
        wave,
        nodes.map((n) => this.delivery.view(n)),
      )
  }

  sortedWave(depth: number): GraphNode[] {
    const names = this.members.names
    return [...this.graph.wave(depth)].sort((a, b) =>
      names[a.sender]! < names[b.sender]!
        ? -1
        : names[a.sender]! > names[b.sender]!
          ? 1
          : a.seq - b.seq,
    )
  }

  // ---- send path -------------------------------------------------------------------------------

  /** What `send` and `sendDirect` refuse: a closed conversation, a bad or too large payload. */
  private checkPayload(payload: Uint8Array, call: string): void {
    if (this.closed) throw new PsyncError('CLOSED', `conversation ${this.ctx.group.port} is closed`)
    if (!(payload instanceof Uint8Array)) {
      throw new PsyncError('INVALID_ARGUMENT', `${call}() takes the payload as a Uint8Array`)
    }
    if (payload.length > this.options.maxPayloadBytes) {
      throw new PsyncError(
        'PAYLOAD_TOO_LARGE',
        `payload of ${payload.length} bytes exceeds maxPayloadBytes (${this.options.maxPayloadBytes}); split it or raise the option`,
      )
    }
  }

  send(payload: Uint8Array): PsyncMessage {
    this.checkPayload(payload, 'send')
    const notReady = this.own.notReady()
    if (notReady !== undefined) throw notReady
    const self = this.members.self
    const seq = ++this.own.mySeq
    const deps = this.graph.leafRefs()
    const encoded = encodeDataWithPayload(self, seq, deps, payload)
    const node = this.graph.insert(self, seq, deps, encoded.payload, false, encoded.frame)
    const message = this.delivery.view(node)
    this.counters.inc('sent')
    if (this.ctx.events.has('trace.sent')) {
      this.ctx.events.emit('trace.sent', {
        group: this.ctx.group.port,
        layer: 'psync',
        id: message.id,
        digest: digestBytes(payload),
        deps: message.deps,
        depth: message.depth,
      })
    }
    this.log.appendOwn(node, () => this.transmit(node))
    this.delivery.deliver(node)
    this.afterInsert(node)
    return message
  }

  /** `sendDirect`: one datagram outside the conversation (see `PsyncControl.sendDirect`). */
  sendDirect(to: NodeId, payload: Uint8Array): void {
    this.checkPayload(payload, 'sendDirect')
    const p = this.members.member(to)
    if (p === this.members.self) return
    this.counters.inc('directSent')
    this.net.send(to, directMessage(payload))
  }

  private transmit(node: GraphNode): void {
    if (this.closed) return
    this.own.transmitted(node.seq, this.ctx.clock.now())
    this.counters.inc('transmitted')
    this.net.broadcast(wireMessage(node))
    this.resender.arm()
    if (this.durableHandlers.size > 0) this.durableHandlers.emit(this.own.transmittedSeq)
    // Durable and on the wire: now it counts for stability and waves.
    this.advance()
  }

  /** An exclusion the log recorded, at a restart (before the graph is rebuilt). */
  private reapplyExclusion(p: number, cut: number): void {
    const applied = this.members.cut[p]
    if (p === this.members.self || applied === cut) return
    if (applied !== undefined) {
      // Decided once, agreed everywhere: two different cuts are a bug; keep the one applied.
      this.ctx.log.error('the log records another cut than the one applied', {
        member: this.members.name(p),
        applied,
        recorded: cut,
      })
      return
    }
    exclude(this, p, cut, true)
  }

  // ---- pruning and expiry ------------------------------------------------------------------------

  setPruneFloor(depth: number): void {
    if (!Number.isSafeInteger(depth) || depth < 0) {
      throw new PsyncError('INVALID_ARGUMENT', `prune floor must be a depth >= 0, got ${depth}`)
    }
    this.waves.declare(depth)
    this.armPrune()
  }

  private prune(): void {
    const floor = this.waves.floor()
    if (floor <= 0) return
    // A member excluded with a cut whose last counted message is not here yet: it may depend
    // on anything, so nothing is pruned until it comes (it would get a wrong depth).
    for (let p = 0; p < this.members.size; p++) {
      const cut = this.members.cut[p]
      if (cut !== undefined && cut > 0 && !this.graph.has(p, cut)) return
    }
    this.waves.prunedFloor = floor
    const pruned = this.graph.prune(
      floor,
      (node) => node.logged && this.stability.isStable(node.sender, node.seq),
      this.held.heldDeps(),
    )
    if (pruned.length === 0) return
    this.counters.inc('pruned', pruned.length)
    this.log.prune(pruned, {
      prunedSeq: [...this.graph.prunedSeq],
      prunedDepth: [...this.graph.prunedDepth],
      prunedVc: this.graph.prunedVc.map((v) => [...v]),
      floor,
      declared: this.waves.declaredFloor !== undefined,
      boundary: [...this.graph.boundary].map(([key, { depth, vc }]) => {
        const at = key.indexOf(':')
        return [Number(key.slice(0, at)), Number(key.slice(at + 1)), depth, [...vc]] as const
      }),
    })
  }

  /** Prunes every `pruneEveryMs` while the floor is above what was pruned last. */
  private armPrune(): void {
    if (this.pruneTimer !== undefined || this.closed) return
    if (this.waves.floor() <= this.waves.prunedFloor) return
    this.pruneTimer = this.ctx.clock.setTimer(this.options.pruneEveryMs, () => {
      this.pruneTimer = undefined
      this.prune()
      this.armPrune()
    })
  }

  private armExpiry(): void {
    if (this.closed) return
    this.ctx.clock.setTimer(this.options.heldExpiryMs, () => {
      const dropped = this.held.expire(this.ctx.clock.now() - this.options.heldExpiryMs)
      if (dropped > 0) {
        this.counters.inc('droppedHeldExpired', dropped)
        this.ctx.log.warn('held messages expired (their predecessors never arrived)', {
          count: dropped,
        })
      }
      this.prune()
      this.armExpiry()
    })
  }

  /** Gauges for `host.stats()`. */
  gauges(): Record<string, number> {
    return {
      liveMessages: this.graph.size,
      heldNow: this.held.size,
      missingNow: this.wants.size,
      parkedNow: this.parked.size,
      // Why a graph grows: waves stalled, the floor held back, or a member's messages unstable.
      nextWave: this.waves.next,
      pruneFloorNow: this.waves.floor(),
      unstableMax: Math.max(
        0,
        ...this.members.names.map((_, p) => this.knownSeq(p) - this.stability.stableSeq[p]!),
      ),
    }
  }
}
