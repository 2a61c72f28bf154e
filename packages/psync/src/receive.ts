/**
 * The receive path: decode a frame, note who was heard, and act on it — a DATA frame is
 * dropped (duplicate, void, masked, absurd), parked (its sender is on hold pending a
 * decision), held (a predecessor is missing; ask for it) or accepted; REQUEST, RESTART,
 * LEAVES and ACK frames go to repair, the restart handshake and the resender.
 *
 * Network input never throws: whatever is wrong with a frame is counted and dropped.
 * Invariants: a message is inserted only once all its deps are; a duplicate of a held
 * message prompts a request to whoever re-sent it (it has the predecessors); a frame from a
 * member is evidence of life for that member, whatever else happens to it.
 */
import {
  DecodeError,
  type HeardFrom,
  type HeardKind,
  Listeners,
  MessageBuffer,
  type NodeId,
} from '@consul/xkernel'
import {
  type DataFrame,
  decodeFrame,
  encodeAck,
  encodeDataWithPayload,
  encodeExcluded,
  KIND_ACK,
  KIND_DATA,
  KIND_DIRECT,
  KIND_EXCLUDED,
  KIND_LEAVES,
  KIND_REQUEST,
  KIND_RESTART,
} from './codec.js'
import type { Conversation } from './conversation.js'
import { PsyncError } from './errors.js'
import type { ParkedMessages } from './parked.js'
import type { Repair } from './repair.js'
import type { OwnResender } from './resend.js'
import type { RestartHandshake } from './restart.js'

/** A sequence number this far beyond what a member has sent is refused as absurd. */
export const MAX_SEQ_JUMP = 1_000_000

export class Receiver {
  /** When each member was last heard from (any frame). */
  private readonly heardAt: number[]
  readonly heardHandlers = new Listeners<[HeardFrom]>(
    () => new PsyncError('INVALID_ARGUMENT', 'onHeard takes a function'),
  )
  readonly excludedHandlers = new Listeners<[{ readonly by: NodeId; readonly cut: number }]>(
    () => new PsyncError('INVALID_ARGUMENT', 'onExcluded takes a function'),
  )
  readonly directHandlers = new Listeners<[NodeId, Uint8Array]>(
    () => new PsyncError('INVALID_ARGUMENT', 'onDirect takes a function'),
  )
  /** When each excluded member was last told it is excluded. */
  private readonly toldAt: number[]
  /** When a request or restart of each excluded member was last answered. */
  private readonly answeredExcludedAt: number[]

  constructor(
    private readonly c: Conversation,
    private readonly repair: Repair,
    private readonly resender: OwnResender,
    private readonly restart: RestartHandshake,
    private readonly parked: ParkedMessages,
  ) {
    this.heardAt = new Array<number>(c.members.size).fill(Number.NEGATIVE_INFINITY)
    this.toldAt = new Array<number>(c.members.size).fill(Number.NEGATIVE_INFINITY)
    this.answeredExcludedAt = new Array<number>(c.members.size).fill(Number.NEGATIVE_INFINITY)
  }

  /**
   * A request or restart handshake of an excluded member is answered at most once per
   * `restartRetryMs`: it may still fetch the decision's messages (to learn its exclusion with
   * the view), but one far behind — restarted after the others pruned what it lacks — must not
   * make every member re-send hundreds of messages for each of its requests, without end.
   */
  private answersExcluded(q: number): boolean {
    const c = this.c
    if (c.members.cut[q] === undefined) return true
    const now = c.ctx.clock.now()
    if (now - this.answeredExcludedAt[q]! < c.options.restartRetryMs) {
      c.counters.inc('excludedRequestsDropped')
      return false
    }
    this.answeredExcludedAt[q] = now
    return true
  }

  /**
   * `q` is excluded here and still talks to us (it was cut off and does not know): tell it,
   * at most once per `restartRetryMs` — it may have no other way to learn, when the decision's
   * messages are pruned everywhere.
   */
  private tellExcluded(q: number): void {
    const c = this.c
    const cut = c.members.cut[q]
    if (cut === undefined) return
    const now = c.ctx.clock.now()
    if (now - this.toldAt[q]! < c.options.restartRetryMs) return
    this.toldAt[q] = now
    c.counters.inc('excludedNoticesSent')
    c.net.send(c.members.name(q), MessageBuffer.fromPayload(encodeExcluded(cut)))
  }

  receive(from: NodeId, msg: MessageBuffer): void {
    const c = this.c
    if (c.closed) return
    const fromIndex = c.members.indexOf(from)
    if (fromIndex === undefined) return
    let frame: ReturnType<typeof decodeFrame>
    try {
      frame = decodeFrame(msg, c.members.size)
    } catch (error) {
      if (!DecodeError.isInstance(error)) throw error
      c.counters.inc('droppedMalformed')
      c.ctx.log.debug('malformed psync frame', { from, error: error.message })
      // Authenticated by the transport: still evidence that the member is alive.
      this.heard(fromIndex, 'malformed')
      return
    }
    switch (frame.kind) {
      case KIND_DATA: {
        c.counters.inc('received')
        this.heard(fromIndex, undefined)
        const kind = this.onData(frame, fromIndex)
        this.emitHeard(fromIndex, kind, frame)
        if (frame.sender === fromIndex && c.members.isVoid(fromIndex, frame.seq))
          this.tellExcluded(fromIndex)
        return
      }
      case KIND_REQUEST:
        this.heard(fromIndex, 'request')
        if (this.answersExcluded(fromIndex)) this.repair.answer(frame.refs, frame.have, fromIndex)
        this.tellExcluded(fromIndex)
        return
      case KIND_RESTART:
        this.heard(fromIndex, 'restart')
        if (this.answersExcluded(fromIndex)) this.restart.answer(fromIndex)
        this.tellExcluded(fromIndex)
        return
      case KIND_EXCLUDED:
        this.heard(fromIndex, 'excluded')
        c.counters.inc('excludedNoticesReceived')
        this.excludedHandlers.emit({ by: from, cut: frame.cut })
        return
      case KIND_DIRECT:
        this.heard(fromIndex, 'direct')
        c.counters.inc('directReceived')
        if (this.directHandlers.size > 0) this.directHandlers.emit(from, frame.payload)
        else c.counters.inc('directUnheard')
        return
      case KIND_LEAVES:
        this.heard(fromIndex, 'leaves')
        this.restart.onLeaves(frame.refs, frame.have, fromIndex)
        return
      case KIND_ACK: {
        this.heard(fromIndex, 'ack')
        const seq = frame.have[c.members.self]!
        // A peer cannot hold an own message that never went on the wire: a lie or a bug, and
        // believing it would stop re-sends to that peer for good.
        if (seq > c.own.transmittedSeq) {
          c.counters.inc('droppedAbsurdAck')
          return
        }
        c.acknowledged(fromIndex, seq)
        return
      }
    }
  }

  /**
   * Any frame from `q` is evidence that the link works. After a silence (a partition, a
   * pause) every backoff toward it restarts: repair converges in round trips, not in
   * minutes of backoff that grew while nobody could answer.
   */
  private heard(q: number, kind: HeardKind | undefined): void {
    const now = this.c.ctx.clock.now()
    const silent = now - this.heardAt[q]! > this.c.options.retransmitTimeoutMs
    this.heardAt[q] = now
    if (silent) {
      this.repair.peerHeard(q)
      this.resender.peerHeard(q)
    }
    if (kind !== undefined) this.emitHeard(q, kind, undefined)
  }

  /** `onHeard`: one record per frame from a member, built only when someone listens. */
  private emitHeard(q: number, kind: HeardKind, frame: DataFrame | undefined): void {
    if (this.heardHandlers.size === 0) return
    const c = this.c
    this.heardHandlers.emit({
      member: c.members.name(q),
      kind,
      message: frame === undefined ? undefined : c.members.idOf(frame.sender, frame.seq),
      lastSeq: c.knownSeq(q),
      at: this.heardAt[q]!,
    })
  }

  /** A sequence number of member `p` so far beyond anything known of it that it is absurd. */
  absurd(p: number, seq: number): boolean {
    const c = this.c
    return seq > Math.max(c.knownSeq(p), p === c.members.self ? c.own.mySeq : 0) + MAX_SEQ_JUMP
  }

  private refused(frame: DataFrame): string | undefined {
    const { members } = this.c
    const { sender, seq } = frame
    if (members.isVoid(sender, seq)) return 'droppedExcluded'
    if (members.isMasked(sender)) return 'droppedMasked'
    if (this.absurd(sender, seq)) return 'droppedAbsurdSeq'
    if (members.isDead(sender, seq)) return 'droppedVoidDep'
    for (const dep of frame.deps) if (this.absurd(dep.member, dep.seq)) return 'droppedAbsurdSeq'
    for (const dep of frame.deps) {
      // It builds on a message the group discarded: it can never be inserted the same way
      // everywhere — and neither can anything built on it.
      if (members.isLost(dep.member, dep.seq)) {
        this.bury(sender, seq)
        return 'droppedVoidDep'
      }
    }
    return undefined
  }

  /**
   * Member `p`'s message `seq` builds on a void one: it, `p`'s later messages, and every
   * message built on any of them are dead here — refused on arrival, dropped from the held
   * set, never asked for again. (Else two members that disagree on what is void — one of
   * them is leaving — would re-request and re-send them to each other without end.) Only a
   * member that did not apply a cut the others applied sends such messages.
   */
  private bury(p: number, seq: number): void {
    const { members, held, counters } = this.c
    if (p === members.self || !members.markDead(p, seq)) return
    counters.inc('buried')
    const doomed = (f: DataFrame) =>
      members.isDead(f.sender, f.seq) || f.deps.some((d) => members.isLost(d.member, d.seq))
    for (;;) {
      const dropped = held.dropWhere(doomed)
      if (dropped.length === 0) return
      counters.inc('droppedVoidDep', dropped.length)
      let lowered = false
      for (const f of dropped)
        if (f.sender !== members.self && members.markDead(f.sender, f.seq)) lowered = true
      if (!lowered) return
    }
  }

  /**
   * Handles one DATA frame; returns what became of it (for `onHeard`). `needed`: the frame
   * comes out of the parked set because a message of a member not on hold depends on it.
   */
  onData(frame: DataFrame, from: number, needed = false): HeardKind {
    const c = this.c
    const { sender, seq } = frame
    if (c.graph.has(sender, seq)) {
      c.counters.inc('duplicates')
      // The sender re-sent its own message because we never spoke after it: tell it we have
      // it, or an idle group would re-send forever.
      if (sender === from) {
        c.counters.inc('acksSent')
        c.net.send(c.members.name(from), MessageBuffer.fromPayload(encodeAck(c.have())))
      }
      return 'duplicate'
    }
    const waiting = c.held.get(sender, seq)
    if (waiting !== undefined) {
      c.counters.inc('duplicates')
      // Whoever sent it again has its predecessors: ask it for them now, whatever the backoff.
      this.repair.prompt(c.graph.missing(waiting.deps), from)
      return 'duplicate'
    }
    const reason = this.refused(frame)
    if (reason !== undefined) {
      c.counters.inc(reason)
      return 'refused'
    }
    // A held message (its sender not on hold, or itself needed) waits for this one: its
    // sender has it, so the decision's cut covers it — receive it, do not park it.
    const onHold = (m: number) => this.parked.isOnHold(m)
    if (onHold(sender) && !needed && !c.held.isWanted(sender, seq, onHold)) {
      if (this.parked.has(sender, seq)) {
        c.counters.inc('duplicates')
        return 'duplicate'
      }
      // The payload is a view into the datagram; keep a copy while it waits.
      if (this.parked.park({ ...frame, payload: frame.payload.slice() })) {
        c.counters.inc('parked')
      } else {
        c.counters.inc('droppedParkedOverflow')
      }
      return 'parked'
    }
    const missing = c.graph.missing(frame.deps)
    if (missing.length === 0) {
      // The payload is a view into the datagram: one copy, as the frame the log keeps.
      const kept = encodeDataWithPayload(frame.sender, frame.seq, frame.deps, frame.payload)
      c.accept({ ...frame, payload: kept.payload, frame: kept.frame }, false)
      return 'message'
    }
    // The payload is a view into the datagram; keep a copy while it waits.
    const isNeeded = needed || (onHold(sender) && c.held.isWanted(sender, seq, onHold))
    if (
      !c.held.add(
        { ...frame, payload: frame.payload.slice() },
        missing,
        c.ctx.clock.now(),
        isNeeded,
      )
    ) {
      c.counters.inc('droppedHeldOverflow')
      c.ctx.log.debug('held-message bound reached; message dropped, it will be asked for again', {
        id: c.members.idOf(sender, seq),
      })
      return 'held'
    }
    c.counters.inc('held')
    // Predecessors parked pending a decision: this message's sender has them, so they are
    // below any cut the decision can make — receive them now, or this one (perhaps a vote of
    // the decision itself) would wait for the decision forever. The same goes down the chain:
    // a predecessor already held here (it came before the hold, or before this message) is
    // needed now too, and so are its own parked or held predecessors.
    const stack = [...missing]
    for (let ref = stack.pop(); ref !== undefined; ref = stack.pop()) {
      const parked = this.parked.take(ref.member, ref.seq)
      if (parked !== undefined) {
        c.counters.inc('unparkedNeeded')
        this.onData(parked, from, true)
        continue
      }
      if (!onHold(ref.member)) continue
      const held = c.held.markNeeded(ref.member, ref.seq)
      if (held === undefined) continue
      c.counters.inc('heldNeeded')
      stack.push(...c.graph.missing(held.deps))
    }
    if (c.held.has(sender, seq)) {
      c.wants.want(
        c.graph.missing(frame.deps),
        from === c.members.self ? sender : from,
        c.ctx.clock.now(),
      )
      this.repair.arm()
    }
    return 'held'
  }
}
