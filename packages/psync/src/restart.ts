/**
 * Restart: rebuilding the graph from the log, and the handshake that tells a restarted
 * member what it missed. A member with a log on disk (a crash, or a group closed and opened
 * again) rebuilds its graph, then sends RESTART until a peer answers with LEAVES: its leaves
 * (fetch what is missing of them) and how far it holds every member's messages — for own
 * messages, the word a member whose high-water mark was unreadable waits for before it
 * sends (nothing it sends may reuse a seq a peer holds).
 *
 * Invariants: an exclusion the log recorded below the prune floor is re-applied before any
 * frame is rebuilt;
 * every wave above the pruned prefix is completed (and reported) again, so an
 * Order restored from a checkpoint at or above the prune floor replays exactly the waves
 * after it; the next own seq comes from the durable high-water mark and every own message
 * found, never from what happened to be inserted; an exclusion re-applied before the start
 * voids the same messages as before the crash; LEAVES are believed only while restarting
 * and only within bounds (absurd seqs, or more than `MAX_OWN_LOSS` own messages, drop them).
 *
 * Answering: a RESTART is one byte and its LEAVES answer is O(members), so a peer that
 * repeats RESTART (a restart loop, a storm) is answered at most once per
 * `restartAnswerIntervalMs`; the repeats in between are coalesced into one answer at the end
 * of the interval (computed then, so it is current), never dropped — a restarting member
 * whose answer was lost still gets one.
 * Invariant: at most one LEAVES per peer per `restartAnswerIntervalMs`, and a RESTART is
 * answered within that interval.
 */
import { MessageBuffer, type Timer } from '@consul/xkernel'
import { encodeLeaves, encodeRestart, type Ref } from './codec.js'
import type { Conversation } from './conversation.js'
import { HeldMessages } from './held.js'
import type { Repair } from './repair.js'
import type { WaveTracker } from './waves.js'

/**
 * A peer claiming more own messages than this beyond what the log remembers is not believed:
 * a lost record is a handful of messages, not a range a malformed or hostile frame names.
 */
export const MAX_OWN_LOSS = 4_096
/** How often a ref that a restart handshake merely named is asked for before it is given up. */
const NAMED_WANT_LIMIT = 8

export class RestartHandshake {
  restarting = false
  private timer: Timer | undefined
  /** When each peer's restart was last answered. */
  private readonly answeredAt: number[]
  /** A coalesced answer due to each peer at the end of its interval. */
  private readonly answerTimers: (Timer | undefined)[]

  constructor(
    private readonly c: Conversation,
    private readonly repair: Repair,
    private readonly waves: WaveTracker,
    private readonly absurd: (p: number, seq: number) => boolean,
    /** Re-applies an exclusion the log recorded (`exclude` with `stored`). */
    private readonly reapplyExclusion: (p: number, cut: number) => void,
  ) {
    this.answeredAt = new Array<number>(c.members.size).fill(Number.NEGATIVE_INFINITY)
    this.answerTimers = new Array<Timer | undefined>(c.members.size).fill(undefined)
  }

  /**
   * Rebuilds the graph from the log; returns how many messages it restored (at least 1 when
   * anything was on disk, 0 for a fresh member).
   */
  restore(): number {
    this.c.own.replaying = true
    try {
      return this.replay()
    } finally {
      this.c.own.replaying = false
    }
  }

  private replay(): number {
    const c = this.c
    const { graph, members, own } = c
    const n = members.size
    const self = members.self
    const loaded = c.log.load(n, self)
    const { watermarks, frames } = loaded
    if (
      watermarks === undefined &&
      frames.length === 0 &&
      loaded.ownHighWater === 0 &&
      loaded.exclusions.length === 0
    )
      return 0
    if (watermarks !== undefined) {
      for (let p = 0; p < n; p++) {
        graph.prunedSeq[p] = watermarks.prunedSeq[p]!
        graph.prunedDepth[p] = watermarks.prunedDepth[p]!
        graph.prunedVc[p] = [...watermarks.prunedVc[p]!]
      }
      graph.boundary = new Map(
        (watermarks.boundary ?? []).map(([member, seq, depth, vc]) => [
          `${member}:${seq}`,
          { depth, vc },
        ]),
      )
      // Waves above every pruned message are intact in the log; below, some were pruned.
      this.waves.resume(watermarks.prunedDepth, watermarks.floor, watermarks.declared)
    }
    // Exclusions applied before the crash whose deciding messages the log may no longer hold:
    // applied when the first incomplete wave was below the prune floor, so the decision lies
    // in the pruned prefix, and every checkpoint a restart may restore (at the floor or above:
    // the floor is the lowest one any member of the view may need) was taken after it. Applied
    // before anything is rebuilt — the same point as the deciding protocol restoring it from
    // such a checkpoint — so their void messages are not rebuilt, nor what builds on them, also
    // when that protocol has no usable checkpoint left (a member whose checkpoints are all
    // unreadable, fetching one: it would otherwise take the excluded member's later messages
    // in and build on them, and the others bury every message it sends from then on). An
    // exclusion above the floor is left to the deciding protocol, as before: it re-applies it
    // on replaying the decision (still in the log) or from its checkpoint, and applying it
    // earlier here would change the waves the replay completes.
    const floor = watermarks?.floor ?? 0
    for (const { member, cut, wave } of loaded.exclusions)
      if (wave !== undefined && wave < floor) this.reapplyExclusion(member, cut)
    // Everything own in the log is durable, and so is what the high-water mark covers: the
    // replay below delivers own messages as durable (an Order counts them at once).
    let ownMax = graph.prunedSeq[self]!
    for (const frame of frames) if (frame.sender === self && frame.seq > ownMax) ownMax = frame.seq
    own.mySeq = Math.max(loaded.ownHighWater, ownMax)
    own.transmittedSeq = own.mySeq
    // Re-insert in causal order: each frame waits for its deps, like a held message.
    const pending = new HeldMessages(Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY)
    for (const frame of frames) {
      if (graph.has(frame.sender, frame.seq)) continue
      if (
        members.isVoid(frame.sender, frame.seq) ||
        frame.deps.some((d) => members.isVoid(d.member, d.seq))
      ) {
        c.counters.inc('droppedExcluded')
        continue
      }
      const missing = graph.missing(frame.deps)
      if (missing.length === 0) c.accept(frame, true, pending)
      else pending.add(frame, missing, 0)
    }
    // Predecessors lost from the log: hold what needs them and fetch them.
    const now = c.ctx.clock.now()
    for (const frame of frames) {
      if (pending.has(frame.sender, frame.seq)) c.held.add(frame, graph.missing(frame.deps), now)
    }
    for (const ref of pending.wanted()) {
      if (!graph.has(ref.member, ref.seq)) c.wants.want([ref], ref.member, now)
    }
    // Own seqs that went on the wire but are not back in the graph: the own chain has a hole
    // (a record lost to corruption, or held for a lost predecessor). Peers return them.
    for (let s = graph.prunedSeq[self]! + 1; s <= own.mySeq; s++)
      if (!graph.has(self, s)) own.missing.add(s)
    own.uncertain = !loaded.ownHighWaterCertain
    this.wantOwnMissing(now)
    this.repair.arm()
    const restored = frames.length - pending.size
    // Everything the log held may already complete waves and make messages stable.
    c.advance()
    c.counters.inc('restoredMessages', restored)
    c.ctx.log.info('restored conversation from the log', {
      messages: restored,
      held: pending.size,
      seq: own.mySeq,
      wave: this.waves.next,
      ownMissing: own.missing.size,
      ownSeqUncertain: own.uncertain,
    })
    if (own.missing.size > 0 || own.uncertain) {
      c.ctx.log.warn('own history incomplete after the restart; sends wait for peers', {
        missing: own.missing.size,
        uncertain: own.uncertain,
      })
    }
    return Math.max(restored, 1)
  }

  /** Starts the handshake: RESTART to everyone until a peer answers. */
  begin(): void {
    this.restarting = true
    this.sendRestart()
  }

  private sendRestart(): void {
    if (!this.restarting || this.c.closed) return
    this.c.counters.inc('restartsSent')
    this.c.net.broadcast(MessageBuffer.fromPayload(encodeRestart()))
    this.timer = this.c.ctx.clock.setTimer(this.c.options.restartRetryMs, () => this.sendRestart())
  }

  /**
   * A peer restarted: tell it our leaves and how far we hold everyone's messages — now, or,
   * answered less than `restartAnswerIntervalMs` ago, once at the end of the interval.
   */
  answer(from: number): void {
    const c = this.c
    const now = c.ctx.clock.now()
    const since = now - this.answeredAt[from]!
    const interval = c.options.restartAnswerIntervalMs
    if (since >= interval) {
      this.sendLeaves(from)
      return
    }
    c.counters.inc('restartAnswersCoalesced')
    if (this.answerTimers[from] !== undefined) return
    this.answerTimers[from] = c.ctx.clock.setTimer(interval - since, () => {
      this.answerTimers[from] = undefined
      if (!c.closed) this.sendLeaves(from)
    })
  }

  private sendLeaves(from: number): void {
    this.answeredAt[from] = this.c.ctx.clock.now()
    this.c.counters.inc('restartsAnswered')
    this.c.net.send(
      this.c.members.name(from),
      MessageBuffer.fromPayload(encodeLeaves(this.c.graph.leafRefs(), this.c.have())),
    )
  }

  /** A peer's answer to our RESTART (see the module comment). */
  onLeaves(refs: readonly Ref[], have: readonly number[], from: number): void {
    const c = this.c
    const { own, members } = c
    const self = members.self
    c.counters.inc('leavesReceived')
    // An answer to our RESTART only: unasked, it could make us fetch (or wait for) anything.
    if (!this.restarting) {
      c.counters.inc('leavesUnsolicited')
      return
    }
    let ownKnown = have[self]!
    for (const r of refs) if (r.member === self && r.seq > ownKnown) ownKnown = r.seq
    if (
      refs.some((r) => this.absurd(r.member, r.seq)) ||
      have.some((s, p) => this.absurd(p, s)) ||
      ownKnown > own.mySeq + MAX_OWN_LOSS
    ) {
      c.counters.inc('droppedAbsurdSeq')
      return
    }
    const now = c.ctx.clock.now()
    if (ownKnown > own.mySeq) {
      // Our log forgot own messages a peer holds: they are ours, and their ids are taken.
      c.ctx.log.warn('a peer holds own messages the log lost; fetching them back', {
        from: members.name(from),
        seq: own.mySeq,
        peerHas: ownKnown,
      })
      own.learnedFromPeer(ownKnown)
      this.wantOwnMissing(now)
    }
    own.uncertain = false
    const wanted = c.graph.missing(refs).filter((r) => !c.held.has(r.member, r.seq))
    if (wanted.length > 0) {
      c.wants.want(wanted, from, now, 'named', NAMED_WANT_LIMIT)
      this.repair.arm()
    }
    this.restarting = false
    this.timer?.cancel()
    this.timer = undefined
    c.ctx.log.info('restart handshake answered', {
      from: members.name(from),
      missing: wanted.length,
    })
  }

  /** Asks peers for every own message still missing (what is held is asked for already). */
  private wantOwnMissing(now: number): void {
    const refs: Ref[] = []
    const self = this.c.members.self
    for (const seq of this.c.own.missing)
      if (!this.c.held.has(self, seq)) refs.push({ member: self, seq })
    if (refs.length > 0) this.c.wants.want(refs, -1, now, 'own')
  }
}
