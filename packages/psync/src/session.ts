/**
 * One Psync conversation: the receive path (validate, drop duplicates and masked senders,
 * hold messages with missing predecessors, insert in causal order, release what waited),
 * the send path (context = current leaves; write-ahead log; then the wire), retransmission
 * (ask for what is missing; re-send own messages a peer has not acknowledged), stability,
 * waves, pruning, and the restart handshake.
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
  DecodeError,
  digestBytes,
  type GroupNetwork,
  Listeners,
  MessageBuffer,
  type MessageId,
  messageId,
  type NodeId,
  type PsyncControl,
  type PsyncMessage,
  parseMessageId,
  type SessionContext,
  type Timer,
} from '@consul/xkernel'
import { retryDelay } from './backoff.js'
import {
  type DataFrame,
  decodeFrame,
  encodeAck,
  encodeDataWithPayload,
  encodeLeaves,
  encodeRequest,
  encodeRestart,
  KIND_ACK,
  KIND_DATA,
  KIND_LEAVES,
  KIND_REQUEST,
  KIND_RESTART,
  type Ref,
  wireMessage,
} from './codec.js'
import { ContextGraph, type GraphNode } from './context-graph.js'
import { PsyncError } from './errors.js'
import { HeldMessages } from './held.js'
import { MessageLog } from './log.js'
import type { ResolvedOptions } from './options.js'
import { MissingTracker } from './retransmit.js'

/** A sequence number this far beyond what a member has sent is refused as absurd. */
const MAX_SEQ_JUMP = 1_000_000
/**
 * A peer claiming more own messages than this beyond what the log remembers is not believed:
 * a lost record is a handful of messages, not a range a malformed or hostile frame names.
 */
const MAX_OWN_LOSS = 4_096
/** How often a ref that a restart handshake merely named is asked for before it is given up. */
const NAMED_WANT_LIMIT = 8
/** Most own messages re-sent at once to a peer that lacks them (it asks for the rest). */
const RESEND_BATCH = 32

/** A DATA frame to insert, with its encoded bytes when they are at hand (`GraphNode.frame`). */
type KeptFrame = DataFrame & { readonly frame?: Uint8Array }

export class PsyncSession {
  readonly control: PsyncControl
  private readonly members: readonly NodeId[]
  private readonly index = new Map<NodeId, number>()
  private readonly self: number
  private readonly graph: ContextGraph
  private readonly held: HeldMessages
  private readonly missing: MissingTracker
  private readonly log: MessageLog
  private readonly net: GroupNetwork
  private readonly counters: Counters
  /** Member p counts for stability and waves (not masked, not excluded). */
  private readonly active: boolean[]
  /** Exclusion cut per member (messages above it are refused); undefined when not excluded. */
  private readonly cut: (number | undefined)[]
  private readonly stableSeq: number[]
  /** Re-sends to each member since it last acknowledged (or was heard after a silence). */
  private readonly resendAttempts: number[]
  private readonly resentAt: number[]
  private readonly ackedAt: number[]
  /** When each member was last heard from (any frame). */
  private readonly heardAt: number[]
  /**
   * Own seqs at most `mySeq` that are neither in the graph nor pruned (lost from the log by
   * corruption, or held for a lost predecessor): until they are back, nothing new is sent.
   * Invariant: empty except after a restart that found a hole in the own chain.
   */
  private readonly ownMissing = new Set<number>()
  /** The restored high-water mark could not be trusted: wait for a peer's word on own seqs. */
  private ownSeqUncertain = false
  private viewId = 0
  private mySeq = 0
  /** Highest own seq already on the wire (durable). */
  private transmittedSeq = 0
  /** When the latest own message went on the wire. */
  private transmittedAt = Number.NEGATIVE_INFINITY
  private nextWave = 0
  /**
   * The floor checkpointing declared (`setPruneFloor`): nothing at or above it is pruned.
   * Undefined until declared; with `retainWaves` alone, pruning keeps that many waves.
   */
  private declaredFloor: number | undefined
  private restarting = false
  private closed = false
  private retransmitTimer: Timer | undefined
  private retransmitAt = Number.POSITIVE_INFINITY
  private resendTimer: Timer | undefined
  private restartTimer: Timer | undefined
  private pruneTimer: Timer | undefined
  /** The floor the last prune ran with. */
  private prunedFloor = 0
  private readonly deliverHandlers = new Listeners<[PsyncMessage]>(
    () => new PsyncError('INVALID_ARGUMENT', 'onDeliver takes a function'),
  )
  private readonly waveHandlers = new Listeners<[number, readonly PsyncMessage[]]>(
    () => new PsyncError('INVALID_ARGUMENT', 'onWave takes a function'),
  )
  private readonly memberHandlers = new Listeners<[readonly NodeId[]]>(
    () => new PsyncError('INVALID_ARGUMENT', 'onMembersChanged takes a function'),
  )
  private readonly stableHandlers = new Listeners<[NodeId, number]>(
    () => new PsyncError('INVALID_ARGUMENT', 'onStable takes a function'),
  )
  private readonly durableHandlers = new Listeners<[number]>(
    () => new PsyncError('INVALID_ARGUMENT', 'onDurable takes a function'),
  )
  private readonly iteratorMode: boolean
  private readonly queue: PsyncMessage[] = []
  private readonly waiters: ((r: IteratorResult<PsyncMessage>) => void)[] = []

  constructor(
    private readonly ctx: SessionContext<Record<never, never>>,
    private readonly options: ResolvedOptions,
  ) {
    // Wire indexes are positions in the list: canonical order, whatever the caller wrote.
    this.members = [...ctx.group.members].sort()
    this.members.forEach((m, i) => {
      this.index.set(m, i)
    })
    this.self = this.index.get(ctx.self)!
    const n = this.members.length
    this.graph = new ContextGraph(n)
    this.held = new HeldMessages(options.maxHeld, options.maxHeldBytes)
    this.missing = new MissingTracker(options, this.self, ctx.random)
    this.counters = ctx.counters
    this.log = new MessageLog(
      ctx.storage,
      ctx.clock,
      options.logEveryMs,
      ctx.counters,
      ctx.log,
      ctx.group.port,
    )
    this.active = this.members.map(() => true)
    this.cut = this.members.map(() => undefined)
    this.stableSeq = this.members.map(() => 0)
    this.resendAttempts = this.members.map(() => 0)
    this.resentAt = this.members.map(() => Number.NEGATIVE_INFINITY)
    this.ackedAt = this.members.map(() => 0)
    this.heardAt = this.members.map(() => Number.NEGATIVE_INFINITY)
    const delivery =
      (ctx.group.options.psync as { delivery?: unknown } | undefined)?.delivery ?? options.delivery
    if (delivery !== 'callback' && delivery !== 'iterator') {
      throw new PsyncError(
        'INVALID_ARGUMENT',
        `psync delivery must be 'callback' or 'iterator', got ${String(delivery)}`,
      )
    }
    this.iteratorMode = delivery === 'iterator'
    this.net = ctx.claimNetwork()
    this.net.onReceive((from, msg) => this.receive(from, msg))
    this.control = this.makeControl()
  }

  /** Called once every session of the group exists. */
  start(): void {
    // A log on disk means this member took part before (a restart, or a group closed and
    // opened again): rebuild from it and ask a peer for what it missed meanwhile.
    const restored = this.restore()
    if (this.ctx.group.restoring || restored > 0) {
      this.restarting = true
      this.sendRestart()
    }
    this.armExpiry()
  }

  async close(): Promise<void> {
    await this.log.close()
    this.closed = true
    for (const w of this.waiters.splice(0)) w({ value: undefined, done: true })
  }

  // ---- receive path -------------------------------------------------------------------------

  private receive(from: NodeId, msg: MessageBuffer): void {
    if (this.closed) return
    const fromIndex = this.index.get(from)
    if (fromIndex === undefined) return
    let frame: ReturnType<typeof decodeFrame>
    try {
      frame = decodeFrame(msg, this.members.length)
    } catch (error) {
      if (!DecodeError.isInstance(error)) throw error
      this.counters.inc('droppedMalformed')
      this.ctx.log.debug('malformed psync frame', { from, error: error.message })
      return
    }
    this.heard(fromIndex)
    switch (frame.kind) {
      case KIND_DATA:
        this.counters.inc('received')
        this.onData(frame, fromIndex)
        return
      case KIND_REQUEST:
        this.onRequest(frame.refs, frame.have, fromIndex)
        return
      case KIND_RESTART:
        this.counters.inc('restartsAnswered')
        this.net.send(
          from,
          MessageBuffer.fromPayload(encodeLeaves(this.graph.leafRefs(), this.have())),
        )
        return
      case KIND_LEAVES:
        this.onLeaves(frame.refs, frame.have, fromIndex)
        return
      case KIND_ACK: {
        const seq = frame.have[this.self]!
        // A peer cannot hold an own message that never went on the wire: a lie or a bug, and
        // believing it would stop re-sends to that peer for good.
        if (seq > this.transmittedSeq) {
          this.counters.inc('droppedAbsurdAck')
          return
        }
        this.acknowledged(fromIndex, seq)
        return
      }
    }
  }

  /**
   * Any frame from `q` is evidence that the link works. After a silence (a partition, a
   * pause) every backoff toward it restarts: repair converges in round trips, not in
   * minutes of backoff that grew while nobody could answer.
   */
  private heard(q: number): void {
    const now = this.ctx.clock.now()
    const silent = now - this.heardAt[q]! > this.options.retransmitTimeoutMs
    this.heardAt[q] = now
    if (!silent) return
    if (this.missing.size > 0) {
      this.missing.peerHeard(q, now)
      this.armRetransmit()
    }
    if (this.resendAttempts[q]! > 0) {
      this.resendAttempts[q] = 0
      this.resentAt[q] = Number.NEGATIVE_INFINITY
      this.armResend()
    }
  }

  /** The highest seq of member `p` known here (in the graph, or pruned). */
  private knownSeq(p: number): number {
    return Math.max(this.graph.last[p]?.seq ?? 0, this.graph.prunedSeq[p]!)
  }

  /** A sequence number of member `p` so far beyond anything known of it that it is absurd. */
  private absurd(p: number, seq: number): boolean {
    return seq > Math.max(this.knownSeq(p), p === this.self ? this.mySeq : 0) + MAX_SEQ_JUMP
  }

  /** A seq of member p that an exclusion made void: above its cut (for good). */
  private isVoid(p: number, seq: number): boolean {
    const cut = this.cut[p]
    return cut !== undefined && seq > cut
  }

  private refused(frame: DataFrame): string | undefined {
    const { sender, seq } = frame
    if (this.isVoid(sender, seq)) return 'droppedExcluded'
    if (!this.active[sender] && this.cut[sender] === undefined) return 'droppedMasked'
    if (this.absurd(sender, seq)) return 'droppedAbsurdSeq'
    for (const dep of frame.deps) {
      if (this.absurd(dep.member, dep.seq)) return 'droppedAbsurdSeq'
      // It builds on a message the group discarded: it can never be inserted the same way
      // everywhere.
      if (this.isVoid(dep.member, dep.seq)) return 'droppedVoidDep'
    }
    return undefined
  }

  private onData(frame: DataFrame, from: number): void {
    const { sender, seq } = frame
    if (this.graph.has(sender, seq)) {
      this.counters.inc('duplicates')
      // The sender re-sent its own message because we never spoke after it: tell it we have
      // it, or an idle group would re-send forever.
      if (sender === from) {
        this.counters.inc('acksSent')
        this.net.send(this.members[from]!, MessageBuffer.fromPayload(encodeAck(this.have())))
      }
      return
    }
    const waiting = this.held.get(sender, seq)
    if (waiting !== undefined) {
      this.counters.inc('duplicates')
      // Whoever sent it again has its predecessors: ask it for them now, whatever the backoff.
      const due = this.missing.prompt(this.graph.missing(waiting.deps), from, this.ctx.clock.now())
      if (due !== undefined && due < this.retransmitAt) this.armRetransmit()
      return
    }
    const reason = this.refused(frame)
    if (reason !== undefined) {
      this.counters.inc(reason)
      return
    }
    const missing = this.graph.missing(frame.deps)
    if (missing.length === 0) {
      // The payload is a view into the datagram: one copy, as the frame the log keeps.
      const kept = encodeDataWithPayload(frame.sender, frame.seq, frame.deps, frame.payload)
      this.accept({ ...frame, payload: kept.payload, frame: kept.frame }, false)
      return
    }
    // The payload is a view into the datagram; keep a copy while it waits.
    if (
      !this.held.add({ ...frame, payload: frame.payload.slice() }, missing, this.ctx.clock.now())
    ) {
      this.counters.inc('droppedHeldOverflow')
      this.ctx.log.debug(
        'held-message bound reached; message dropped, it will be asked for again',
        {
          id: this.idOf(sender, seq),
        },
      )
      return
    }
    this.counters.inc('held')
    this.missing.want(missing, from === this.self ? sender : from, this.ctx.clock.now())
    this.armRetransmit()
  }

  /** Inserts a message whose deps are all present, delivers it, and releases what waited on it. */
  private accept(first: KeptFrame, restored: boolean): void {
    const work: KeptFrame[] = [first]
    for (let frame = work.pop(); frame !== undefined; frame = work.pop()) {
      // An own message of an earlier incarnation, fetched back from a peer, is a replay too.
      const replay = restored || frame.sender === this.self
      const node = this.graph.insert(
        frame.sender,
        frame.seq,
        frame.deps,
        frame.payload,
        replay,
        frame.frame,
      )
      // A frame from the log (restored, or held after a restore until its deps came) is
      // already in the log under its key.
      const logKey = (frame as { logKey?: string }).logKey
      if (logKey !== undefined) {
        node.logged = true
        node.logKey = logKey
      } else if (restored) node.logged = true
      else this.log.append(node)
      this.missing.resolved(frame.sender, frame.seq)
      if (frame.sender === this.self) this.ownRecovered(frame.seq)
      this.deliver(node)
      this.afterInsert(node)
      for (const ready of this.held.release(frame.sender, frame.seq)) work.push(ready)
    }
  }

  /**
   * Answers a request with the requested messages and everything of their causal past the
   * requester lacks (above its `have` vector), oldest depth first, so a member that fell
   * behind catches up in one round trip instead of walking the chain back one message at a
   * time. At most `maxRetransmitBatch` messages per request; the rest is asked for again.
   */
  private onRequest(refs: readonly Ref[], have: readonly number[], from: number): void {
    const to = this.members[from]!
    const n = this.members.length
    const upTo = new Array<number>(n).fill(0)
    for (const ref of refs) {
      const node = this.graph.get(ref.member, ref.seq)
      // Own messages not yet durable are not on the wire yet: they will follow.
      if (node === undefined || (ref.member === this.self && ref.seq > this.transmittedSeq)) {
        this.counters.inc('requestsUnanswerable')
        continue
      }
      for (let p = 0; p < n; p++) if (node.vc[p]! > upTo[p]!) upTo[p] = node.vc[p]!
    }
    upTo[this.self] = Math.min(upTo[this.self]!, this.transmittedSeq)
    const answer: GraphNode[] = []
    for (let p = 0; p < n; p++) {
      const from = Math.max(have[p]!, this.graph.prunedSeq[p]!)
      if (upTo[p]! > from) for (const node of this.graph.range(p, from, upTo[p]!)) answer.push(node)
    }
    answer.sort((a, b) => a.depth - b.depth)
    const batch = answer.slice(0, this.options.maxRetransmitBatch)
    for (const node of batch) {
      this.net.send(to, wireMessage(node))
    }
    this.counters.inc('retransmitted', batch.length)
  }

  /**
   * A peer's answer to our RESTART: its leaves (fetch what we lack of them) and how far it
   * holds every member's messages. For our own messages that is the word a member whose
   * high-water mark was unreadable waits for before it sends: nothing it sends may reuse a
   * seq a peer holds. What a LEAVES frame names is bounded (absurd seqs drop the frame) and
   * asked for a bounded number of times: a peer may name what no one has.
   */
  private onLeaves(refs: readonly Ref[], have: readonly number[], from: number): void {
    this.counters.inc('leavesReceived')
    // An answer to our RESTART only: unasked, it could make us fetch (or wait for) anything.
    if (!this.restarting) {
      this.counters.inc('leavesUnsolicited')
      return
    }
    let ownKnown = have[this.self]!
    for (const r of refs) if (r.member === this.self && r.seq > ownKnown) ownKnown = r.seq
    if (
      refs.some((r) => this.absurd(r.member, r.seq)) ||
      have.some((s, p) => this.absurd(p, s)) ||
      ownKnown > this.mySeq + MAX_OWN_LOSS
    ) {
      this.counters.inc('droppedAbsurdSeq')
      return
    }
    const now = this.ctx.clock.now()
    if (ownKnown > this.mySeq) {
      // Our log forgot own messages a peer holds: they are ours, and their ids are taken.
      this.ctx.log.warn('a peer holds own messages the log lost; fetching them back', {
        from: this.members[from],
        seq: this.mySeq,
        peerHas: ownKnown,
      })
      for (let s = this.mySeq + 1; s <= ownKnown; s++) this.ownMissing.add(s)
      this.mySeq = ownKnown
      this.transmittedSeq = Math.max(this.transmittedSeq, ownKnown)
      this.wantOwnMissing(now)
    }
    this.ownSeqUncertain = false
    const wanted = this.graph.missing(refs).filter((r) => !this.held.has(r.member, r.seq))
    if (wanted.length > 0) {
      this.missing.want(wanted, from, now, 'named', NAMED_WANT_LIMIT)
      this.armRetransmit()
    }
    if (this.restarting) {
      this.restarting = false
      this.restartTimer?.cancel()
      this.restartTimer = undefined
      this.ctx.log.info('restart handshake answered', {
        from: this.members[from],
        missing: wanted.length,
      })
    }
  }

  // ---- delivery, stability, waves -------------------------------------------------------------

  private idOf(member: number, seq: number): MessageId {
    return messageId(this.members[member]!, seq)
  }

  /**
   * The message as the layer above sees it, built once and kept on the node (not in a
   * `WeakMap`: ephemeron tables make every young-generation GC pause longer).
   */
  private view(node: GraphNode): PsyncMessage {
    let view = node.view
    if (view === undefined) {
      const members = this.members
      view = {
        id: messageId(members[node.sender]!, node.seq),
        sender: members[node.sender]!,
        seq: node.seq,
        depth: node.depth,
        deps: node.deps.map((d) => messageId(members[d.member]!, d.seq)),
        payload: node.payload,
        restored: node.restored,
      }
      node.view = view
    }
    return view
  }

  private deliver(node: GraphNode): void {
    this.counters.inc('delivered')
    const events = this.ctx.events
    const message = this.view(node)
    if (events.has('trace.delivered')) {
      events.emit('trace.delivered', {
        group: this.ctx.group.port,
        layer: 'psync',
        id: message.id,
        from: message.sender,
        digest: digestBytes(message.payload),
        deps: message.deps,
        depth: message.depth,
      })
    }
    this.deliverHandlers.emit(message)
    if (this.iteratorMode) {
      const waiter = this.waiters.shift()
      if (waiter !== undefined) waiter({ value: message, done: false })
      else this.queue.push(message)
    }
  }

  /**
   * Member q's last message: what q had seen when it last spoke. For this member, the last
   * message on the wire — one not yet durable may die with a crash, so it must not count
   * toward stability or wave completion.
   */
  private lastOf(q: number): GraphNode | undefined {
    return q === this.self ? this.graph.get(this.self, this.transmittedSeq) : this.graph.last[q]
  }

  private knows(q: number, p: number): number {
    const last = this.lastOf(q)
    return last === undefined ? this.graph.prunedVc[q]![p]! : last.vc[p]!
  }

  private afterInsert(node: GraphNode): void {
    if (node.sender !== this.self) this.acknowledged(node.sender, node.vc[this.self]!)
    this.advanceStability()
    this.advanceWaves()
  }

  /** Member q has every own message up to `seq`: stop re-sending those to it. */
  private acknowledged(q: number, seq: number): void {
    if (seq > this.ackedAt[q]!) {
      this.ackedAt[q] = seq
      this.resendAttempts[q] = 0
    }
  }

  private advanceStability(): void {
    const n = this.members.length
    const trace = this.ctx.events.has('trace.stable')
    for (let p = 0; p < n; p++) {
      let low = Number.POSITIVE_INFINITY
      for (let q = 0; q < n; q++) {
        if (q === p || !this.active[q]) continue
        const k = this.knows(q, p)
        if (k < low) low = k
      }
      if (low === Number.POSITIVE_INFINITY) low = this.knownSeq(p)
      // An own message counts only once durable; an excluded member's only up to its cut.
      if (p === this.self && low > this.transmittedSeq) low = this.transmittedSeq
      const before = this.stableSeq[p]!
      if (low <= before) continue
      this.stableSeq[p] = low
      if (trace) {
        for (const s of this.graph.range(p, before, low)) {
          this.ctx.events.emit('trace.stable', {
            group: this.ctx.group.port,
            layer: 'psync',
            id: this.idOf(p, s.seq),
          })
        }
      }
      if (this.stableHandlers.size > 0) this.stableHandlers.emit(this.members[p]!, low)
    }
  }

  private memberDepth(p: number): number {
    return this.lastOf(p)?.depth ?? this.graph.prunedDepth[p]!
  }

  /**
   * Every member of the agreed list has sent a message of depth ≥ `depth`, and every member
   * excluded with a cut has all its messages up to the cut here: those count, everywhere, so
   * a wave that may hold one of them waits for it (it is in the causal past of the decision,
   * so some member has it and retransmission brings it).
   */
  private waveComplete(depth: number): boolean {
    let any = false
    for (let p = 0; p < this.members.length; p++) {
      if (!this.active[p]) {
        const cut = this.cut[p]
        if (cut !== undefined && cut > 0 && !this.graph.has(p, cut)) return false
        continue
      }
      any = true
      if (this.memberDepth(p) < depth) return false
    }
    return any
  }

  private advanceWaves(): void {
    while (this.waveComplete(this.nextWave)) {
      const wave = this.nextWave++
      const nodes = this.sortedWave(wave)
      if (this.ctx.events.has('trace.wave')) {
        this.ctx.events.emit('trace.wave', {
          group: this.ctx.group.port,
          layer: 'psync',
          wave,
          ids: nodes.map((n) => this.idOf(n.sender, n.seq)),
        })
      }
      if (this.waveHandlers.size > 0)
        this.waveHandlers.emit(
          wave,
          nodes.map((n) => this.view(n)),
        )
    }
    this.armPrune()
  }

  private sortedWave(depth: number): GraphNode[] {
    const members = this.members
    return [...this.graph.wave(depth)].sort((a, b) =>
      members[a.sender]! < members[b.sender]!
        ? -1
        : members[a.sender]! > members[b.sender]!
          ? 1
          : a.seq - b.seq,
    )
  }

  // ---- send path ------------------------------------------------------------------------------

  private send(payload: Uint8Array): PsyncMessage {
    if (this.closed) throw new PsyncError('CLOSED', `conversation ${this.ctx.group.port} is closed`)
    if (!(payload instanceof Uint8Array)) {
      throw new PsyncError('INVALID_ARGUMENT', 'send() takes the payload as a Uint8Array')
    }
    if (payload.length > this.options.maxPayloadBytes) {
      throw new PsyncError(
        'PAYLOAD_TOO_LARGE',
        `payload of ${payload.length} bytes exceeds maxPayloadBytes (${this.options.maxPayloadBytes}); split it or raise the option`,
      )
    }
    if (this.ownSeqUncertain || this.ownMissing.size > 0) {
      throw new PsyncError(
        'NOT_READY',
        this.ownSeqUncertain
          ? `conversation ${this.ctx.group.port} restarted without a readable high-water mark: it sends again once a peer has said how far its messages went`
          : `conversation ${this.ctx.group.port} restarted with ${this.ownMissing.size} own message(s) missing from its log (e.g. seq ${this.ownMissing.values().next().value}): it sends again once peers have returned them`,
      )
    }
    const seq = ++this.mySeq
    const deps = this.graph.leafRefs()
    const encoded = encodeDataWithPayload(this.self, seq, deps, payload)
    const node = this.graph.insert(this.self, seq, deps, encoded.payload, false, encoded.frame)
    const message = this.view(node)
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
    this.deliver(node)
    this.afterInsert(node)
    return message
  }

  private transmit(node: GraphNode): void {
    if (this.closed) return
    if (node.seq > this.transmittedSeq) this.transmittedSeq = node.seq
    this.transmittedAt = this.ctx.clock.now()
    this.counters.inc('transmitted')
    this.net.broadcast(wireMessage(node))
    this.armResend()
    if (this.durableHandlers.size > 0) this.durableHandlers.emit(this.transmittedSeq)
    // Durable and on the wire: now it counts for stability and waves.
    this.advanceStability()
    this.advanceWaves()
  }

  // ---- retransmission ---------------------------------------------------------------------------

  private candidates(): number[] {
    const out: number[] = []
    for (let p = 0; p < this.members.length; p++) if (p !== this.self && this.active[p]) out.push(p)
    return out
  }

  /** (Re)arms the request timer for the earliest due want. */
  private armRetransmit(): void {
    const due = this.missing.nextDueAt()
    if (due === undefined) return
    if (this.retransmitTimer !== undefined) {
      if (this.retransmitAt <= due) return
      this.retransmitTimer.cancel()
    }
    this.retransmitAt = due
    this.retransmitTimer = this.ctx.clock.setTimer(due - this.ctx.clock.now(), () => {
      this.retransmitTimer = undefined
      this.askForMissing()
    })
  }

  private askForMissing(): void {
    // Stop asking for what no held message needs any more (expired, excluded).
    const wanted = new Set(this.held.wanted().map((r) => `${r.member}:${r.seq}`))
    this.missing.retain((r, kind) => {
      if (this.isVoid(r.member, r.seq)) return false
      switch (kind) {
        case 'held':
          return wanted.has(`${r.member}:${r.seq}`)
        case 'own':
          return this.ownMissing.has(r.seq)
        case 'cut':
        case 'named':
          return !this.graph.has(r.member, r.seq)
      }
    })
    const requests = this.missing.due(this.ctx.clock.now(), this.candidates())
    for (const [target, refs] of requests) {
      for (let i = 0; i < refs.length; i += 512) {
        this.net.send(
          this.members[target]!,
          MessageBuffer.fromPayload(encodeRequest(refs.slice(i, i + 512), this.have())),
        )
      }
      this.counters.inc('requestsSent')
      this.counters.inc('requestedMessages', refs.length)
      this.ctx.events.emit('psync.retransmitting', {
        group: this.ctx.group.port,
        peer: this.members[target]!,
        direction: 'from',
        count: refs.length,
      })
    }
    this.armRetransmit()
  }

  /** have[p]: every message of member p up to this seq is here (or pruned). */
  private have(): number[] {
    return this.members.map((_, p) =>
      Math.max(this.graph.last[p]?.seq ?? 0, this.graph.prunedSeq[p]!),
    )
  }

  private armResend(): void {
    if (this.resendTimer !== undefined || this.closed) return
    this.resendTimer = this.ctx.clock.setTimer(this.options.resendAfterMs, () => {
      this.resendTimer = undefined
      this.resendUnacknowledged()
    })
  }

  /**
   * A peer that has not acknowledged our latest message (its last message does not have it
   * in its past) gets again what it is known to lack — the own messages above what it
   * acknowledged, the newest `RESEND_BATCH` of them — with per-peer backoff; the peer then
   * asks for anything older it still lacks, in one request.
   */
  private resendUnacknowledged(): void {
    const last = this.graph.get(this.self, this.transmittedSeq)
    if (last === undefined) return
    const now = this.ctx.clock.now()
    // Under steady traffic the latest message is always fresh: give it a chance first.
    if (now - this.transmittedAt < this.options.resendAfterMs) {
      this.armResend()
      return
    }
    let pending = false
    for (const q of this.candidates()) {
      const acked = this.ackedAt[q]!
      if (acked >= last.seq) continue
      pending = true
      const wait = retryDelay(
        this.resendAttempts[q]!,
        this.options.resendAfterMs,
        this.options.maxBackoffMs,
      )
      if (now - this.resentAt[q]! < wait) continue
      this.resentAt[q] = now
      this.resendAttempts[q]!++
      const from = Math.max(acked, last.seq - RESEND_BATCH, this.graph.prunedSeq[this.self]!)
      let count = 0
      for (const node of this.graph.range(this.self, from, last.seq)) {
        this.net.send(this.members[q]!, wireMessage(node))
        count++
      }
      this.counters.inc('resent', count)
      this.ctx.events.emit('psync.retransmitting', {
        group: this.ctx.group.port,
        peer: this.members[q]!,
        direction: 'to',
        count,
      })
    }
    if (pending) this.armResend()
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

  // ---- restart ----------------------------------------------------------------------------------

  /**
   * Rebuilds the graph from the log; returns how many messages it restored. Every wave above
   * the pruned prefix is completed (and reported) again, so an Order restored from a
   * checkpoint at or above the prune floor replays exactly the waves after it. The next own
   * seq comes from the durable high-water mark and every own message found (held ones too),
   * never from what happened to be inserted: an id that went on the wire is never reused.
   */
  private restore(): number {
    const n = this.members.length
    const loaded = this.log.load(n, this.self)
    const { watermarks, frames } = loaded
    if (watermarks === undefined && frames.length === 0 && loaded.ownHighWater === 0) return 0
    if (watermarks !== undefined) {
      for (let p = 0; p < n; p++) {
        this.graph.prunedSeq[p] = watermarks.prunedSeq[p]!
        this.graph.prunedDepth[p] = watermarks.prunedDepth[p]!
        this.graph.prunedVc[p] = [...watermarks.prunedVc[p]!]
      }
      // Waves above every pruned message are intact in the log; below, some were pruned.
      this.nextWave = Math.max(-1, ...watermarks.prunedDepth) + 1
      if (watermarks.declared) this.declaredFloor = watermarks.floor
      this.prunedFloor = Math.min(watermarks.floor, this.nextWave)
    }
    // Everything own in the log is durable, and so is what the high-water mark covers: the
    // replay below delivers own messages as durable (an Order counts them at once).
    let ownMax = this.graph.prunedSeq[this.self]!
    for (const frame of frames)
      if (frame.sender === this.self && frame.seq > ownMax) ownMax = frame.seq
    this.mySeq = Math.max(loaded.ownHighWater, ownMax)
    this.transmittedSeq = this.mySeq
    // Re-insert in causal order: each frame waits for its deps, like a held message. An
    // exclusion re-applied before the start (the protocol above restores its decisions first)
    // voids the same messages as before the crash: they are not rebuilt.
    const pending = new HeldMessages(Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY)
    for (const frame of frames) {
      if (this.graph.has(frame.sender, frame.seq)) continue
      if (
        this.isVoid(frame.sender, frame.seq) ||
        frame.deps.some((d) => this.isVoid(d.member, d.seq))
      ) {
        this.counters.inc('droppedExcluded')
        continue
      }
      const missing = this.graph.missing(frame.deps)
      if (missing.length === 0) this.acceptRestored(frame, pending)
      else pending.add(frame, missing, 0)
    }
    // Predecessors lost from the log: hold what needs them and fetch them.
    const now = this.ctx.clock.now()
    for (const frame of frames) {
      if (pending.has(frame.sender, frame.seq))
        this.held.add(frame, this.graph.missing(frame.deps), now)
    }
    for (const ref of pending.wanted()) {
      if (!this.graph.has(ref.member, ref.seq)) this.missing.want([ref], ref.member, now)
    }
    // Own seqs that went on the wire but are not back in the graph: the own chain has a hole
    // (a record lost to corruption, or held for a lost predecessor). Peers return them.
    for (let s = this.graph.prunedSeq[this.self]! + 1; s <= this.mySeq; s++)
      if (!this.graph.has(this.self, s)) this.ownMissing.add(s)
    this.ownSeqUncertain = !loaded.ownHighWaterCertain
    this.wantOwnMissing(now)
    this.armRetransmit()
    const restored = frames.length - pending.size
    // Everything the log held may already complete waves and make messages stable.
    this.advanceStability()
    this.advanceWaves()
    this.counters.inc('restoredMessages', restored)
    this.ctx.log.info('restored conversation from the log', {
      messages: restored,
      held: pending.size,
      seq: this.mySeq,
      wave: this.nextWave,
      ownMissing: this.ownMissing.size,
      ownSeqUncertain: this.ownSeqUncertain,
    })
    if (this.ownMissing.size > 0 || this.ownSeqUncertain) {
      this.ctx.log.warn('own history incomplete after the restart; sends wait for peers', {
        missing: this.ownMissing.size,
        uncertain: this.ownSeqUncertain,
      })
    }
    if (this.mySeq > 0) this.armResend()
    return Math.max(restored, 1)
  }

  /** Asks peers for every own message still missing (what is held is asked for already). */
  private wantOwnMissing(now: number): void {
    const refs: Ref[] = []
    for (const seq of this.ownMissing)
      if (!this.held.has(this.self, seq)) refs.push({ member: this.self, seq })
    if (refs.length > 0) this.missing.want(refs, -1, now, 'own')
  }

  /** Own message `seq` is back in the graph. */
  private ownRecovered(seq: number): void {
    if (this.ownMissing.delete(seq) && this.ownMissing.size === 0)
      this.ctx.log.info('own history complete again; sending resumes', { seq: this.mySeq })
  }

  private acceptRestored(first: DataFrame, pending: HeldMessages): void {
    const work = [first]
    for (let frame = work.pop(); frame !== undefined; frame = work.pop()) {
      const node = this.graph.insert(frame.sender, frame.seq, frame.deps, frame.payload, true)
      node.logged = true
      const logKey = (frame as { logKey?: string }).logKey
      if (logKey !== undefined) node.logKey = logKey
      if (frame.sender === this.self) this.ownRecovered(frame.seq)
      this.deliver(node)
      this.afterInsert(node)
      for (const ready of pending.release(frame.sender, frame.seq)) work.push(ready)
    }
  }

  private sendRestart(): void {
    if (!this.restarting || this.closed) return
    this.counters.inc('restartsSent')
    this.net.broadcast(MessageBuffer.fromPayload(encodeRestart()))
    this.restartTimer = this.ctx.clock.setTimer(this.options.restartRetryMs, () =>
      this.sendRestart(),
    )
  }

  // ---- membership list, pruning ----------------------------------------------------------------

  private member(name: NodeId): number {
    const i = this.index.get(name)
    if (i === undefined)
      throw new PsyncError(
        'NOT_A_MEMBER',
        `${String(name)} is not a member of ${this.ctx.group.port}`,
      )
    return i
  }

  private prune(): void {
    const floor = this.floor()
    if (floor <= 0) return
    // A member excluded with a cut whose last counted message is not here yet: it may depend
    // on anything, so nothing is pruned until it comes (it would get a wrong depth).
    for (let p = 0; p < this.members.length; p++) {
      const cut = this.cut[p]
      if (cut !== undefined && cut > 0 && !this.graph.has(p, cut)) return
    }
    this.prunedFloor = floor
    const pruned = this.graph.prune(
      floor,
      (node) => node.logged && node.seq <= this.stableSeq[node.sender]!,
      this.held.heldDeps(),
    )
    if (pruned.length === 0) return
    this.counters.inc('pruned', pruned.length)
    this.log.prune(pruned, {
      prunedSeq: [...this.graph.prunedSeq],
      prunedDepth: [...this.graph.prunedDepth],
      prunedVc: this.graph.prunedVc.map((v) => [...v]),
      floor,
      declared: this.declaredFloor !== undefined,
    })
  }

  /**
   * Messages below this depth may be pruned (once stable): the floor checkpointing declared,
   * lowered to keep `retainWaves` complete waves when that option is set — or, without a
   * declared floor, `retainWaves` alone. Never above the first incomplete wave.
   */
  private floor(): number {
    const retain = this.options.retainWaves
    const kept = retain === undefined ? undefined : this.nextWave - retain
    const floor =
      kept === undefined
        ? (this.declaredFloor ?? 0)
        : this.declaredFloor === undefined
          ? kept
          : Math.min(kept, this.declaredFloor)
    return Math.min(floor, this.nextWave)
  }

  private membersChanged(): void {
    const members = this.members.filter((_, i) => this.active[i])
    if (this.ctx.events.has('trace.view')) {
      this.ctx.events.emit('trace.view', {
        group: this.ctx.group.port,
        layer: 'psync',
        view: members,
        id: ++this.viewId,
      })
    }
    this.memberHandlers.emit(members)
  }

  /** Prunes every `pruneEveryMs` while the floor is above what was pruned last. */
  private armPrune(): void {
    if (this.pruneTimer !== undefined || this.closed) return
    if (this.floor() <= this.prunedFloor) return
    this.pruneTimer = this.ctx.clock.setTimer(this.options.pruneEveryMs, () => {
      this.pruneTimer = undefined
      this.prune()
      this.armPrune()
    })
  }

  /** Runs pruning now (the expiry timer also runs it periodically). */
  pruneNow(): void {
    this.prune()
  }

  get liveMessages(): number {
    return this.graph.size
  }

  /** Gauges for `host.stats()`. */
  gauges(): Record<string, number> {
    return { liveMessages: this.graph.size, heldNow: this.held.size, missingNow: this.missing.size }
  }

  /** For tests and debugging: what is held, and what it waits for. */
  debugHeld(): { held: string[]; wanted: string[] } {
    return {
      held: this.held.heldIds().map((r) => this.idOf(r.member, r.seq)),
      wanted: this.held.wanted().map((r) => this.idOf(r.member, r.seq)),
    }
  }

  private makeControl(): PsyncControl {
    const ref = (id: MessageId): Ref | undefined => {
      const parsed = parseMessageId(id)
      if (parsed === undefined) return undefined
      const member = this.index.get(parsed.sender)
      return member === undefined ? undefined : { member, seq: parsed.seq }
    }
    const node = (id: MessageId) => {
      const r = ref(id)
      return r === undefined ? undefined : this.graph.get(r.member, r.seq)
    }
    return {
      self: this.ctx.self,
      send: (payload) => this.send(payload),
      onDeliver: (handler) => this.deliverHandlers.add(handler),
      messages: () => {
        if (!this.iteratorMode) {
          throw new PsyncError(
            'WRONG_DELIVERY_MODE',
            "messages() needs the conversation opened with delivery 'iterator' (options: { psync: { delivery: 'iterator' } })",
          )
        }
        const iterator: AsyncIterableIterator<PsyncMessage> = {
          next: () => {
            const value = this.queue.shift()
            if (value !== undefined) return Promise.resolve({ value, done: false })
            if (this.closed) return Promise.resolve({ value: undefined, done: true })
            return new Promise((resolve) => this.waiters.push(resolve))
          },
          [Symbol.asyncIterator]: () => iterator,
        }
        return iterator
      },
      onWave: (handler) => this.waveHandlers.add(handler),
      get: (id) => {
        const n = node(id)
        return n === undefined ? undefined : this.view(n)
      },
      precedes: (a, b) => {
        const ra = ref(a)
        const nb = node(b)
        return ra !== undefined && nb !== undefined && this.graph.precedes(ra, nb)
      },
      stable: (id) => {
        const r = ref(id)
        if (r === undefined) return false
        if (this.graph.isPruned(r.member, r.seq)) return true
        return this.graph.get(r.member, r.seq) !== undefined && r.seq <= this.stableSeq[r.member]!
      },
      onStable: (handler) => this.stableHandlers.add(handler),
      durable: (id) => {
        const r = ref(id)
        return r !== undefined && r.member === this.self && r.seq <= this.transmittedSeq
      },
      onDurable: (handler) => this.durableHandlers.add(handler),
      waveFloor: () => Math.max(-1, ...this.graph.prunedDepth) + 1,
      leaves: () => this.graph.leaves().map((n) => this.view(n)),
      depth: (id) => node(id)?.depth,
      wave: (depth) => this.sortedWave(depth).map((n) => this.view(n)),
      waveComplete: (depth) => depth < this.nextWave || this.waveComplete(depth),
      members: () => this.members.filter((_, i) => this.active[i]),
      onMembersChanged: (handler) => this.memberHandlers.add(handler),
      maskOut: (name) => {
        const p = this.member(name)
        if (p === this.self)
          throw new PsyncError('INVALID_ARGUMENT', 'a member cannot mask itself out')
        if (!this.active[p]) return
        this.active[p] = false
        const dropped = this.held.dropFrom(
          p,
          Math.max(this.graph.last[p]?.seq ?? 0, this.graph.prunedSeq[p]!),
        )
        this.counters.inc('droppedMasked', dropped)
        this.ctx.log.info('member masked out', { member: name })
        this.advanceStability()
        this.advanceWaves()
        this.membersChanged()
      },
      maskIn: (name) => {
        const p = this.member(name)
        if (this.cut[p] !== undefined) {
          // Re-admission would need the excluded member to rewind its own chain to the cut and
          // an agreed wave to count it from: Recovery's job (a new incarnation), not a mask.
          throw new PsyncError(
            'INVALID_ARGUMENT',
            `${name} was excluded with cut ${this.cut[p]}: an excluded member rejoins through Recovery as a new incarnation; maskIn only undoes maskOut`,
          )
        }
        if (this.active[p]) return
        this.active[p] = true
        this.ctx.log.info('member masked in', { member: name })
        this.membersChanged()
      },
      exclude: (name, cutSeq) => {
        const p = this.member(name)
        if (p === this.self)
          throw new PsyncError('INVALID_ARGUMENT', 'a member cannot exclude itself')
        if (!Number.isSafeInteger(cutSeq) || cutSeq < 0) {
          throw new PsyncError(
            'INVALID_ARGUMENT',
            `cut must be a sequence number >= 0, got ${cutSeq}`,
          )
        }
        if (this.cut[p] !== undefined) {
          throw new PsyncError(
            'INVALID_ARGUMENT',
            `${name} is already excluded (cut ${this.cut[p]}); an exclusion is decided once`,
          )
        }
        // Messages above the cut that a complete wave here already counted: the decision
        // contradicts an ordered delivery. Refuse it before changing anything.
        const counted = [...this.graph.range(p, cutSeq, this.knownSeq(p))].filter(
          (m) => m.depth < this.nextWave,
        )
        if (counted.length > 0) {
          this.counters.inc('cutConflicts')
          throw new PsyncError(
            'CUT_CONFLICT',
            `exclude('${name}', ${cutSeq}): ${this.idOf(p, counted[0]!.seq)} is above the cut but wave ${counted[0]!.depth} here is complete with it; Membership must cut at or above every message a member delivered in order`,
          )
        }
        this.active[p] = false
        this.cut[p] = cutSeq
        this.counters.inc('droppedExcluded', this.held.dropFrom(p, cutSeq))
        const discarded = this.graph.discardAbove(p, cutSeq)
        if (discarded.length > 0)
          this.ctx.log.warn('excluded member had messages beyond the cut', {
            member: name,
            count: discarded.length,
          })
        // Its messages up to the cut count everywhere: fetch any not here yet.
        if (cutSeq > 0 && !this.graph.has(p, cutSeq)) {
          this.missing.want([{ member: p, seq: cutSeq }], -1, this.ctx.clock.now(), 'cut')
          this.armRetransmit()
        }
        this.ctx.log.info('member excluded', { member: name, cut: cutSeq })
        this.advanceStability()
        this.advanceWaves()
        this.membersChanged()
      },
      setPruneFloor: (depth) => {
        if (!Number.isSafeInteger(depth) || depth < 0) {
          throw new PsyncError('INVALID_ARGUMENT', `prune floor must be a depth >= 0, got ${depth}`)
        }
        this.declaredFloor = Math.max(this.declaredFloor ?? 0, depth)
        this.armPrune()
      },
    }
  }
}
