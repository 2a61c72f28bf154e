/**
 * One Membership session per group: agreed views over Failure Detection's suspicions.
 *
 * A decision (one per view change; `instance` numbers them) runs in two steps, all of it in
 * ordinary Psync messages, so every member sees every vote in causal order:
 *
 * 1. **Report.** A member that suspects `q` sends `down(q)`. Every member answers it:
 *    `nackDown(q)` when it holds a message of `q` that the `down` did not have in its past
 *    (`q` is slow, not dead: the suspicion is dropped), `ackDown(q)` otherwise. `q` becomes a
 *    *candidate* once every member of the view outside the pending set has answered
 *    `ackDown` (or reported it too).
 * 2. **Ballot** (Paxos, one decree per instance). The coordinator — the lowest-ranked member
 *    of the view that nobody has reported — proposes a set `S` (every candidate, and every
 *    member any earlier ballot of this instance proposed: within an instance the set only
 *    grows). Every member outside `S` is an acceptor: on `propose` it puts the members of `S`
 *    on hold in Psync (their later messages are parked, so nothing of theirs enters a wave)
 *    and promises, with the highest seq of each it holds and the value it accepted so far.
 *    With a promise from every acceptor the coordinator sends `accept` with the value — the
 *    highest-ballot accepted value reported, else `S` with each member's cut = the highest
 *    seq any promise held — and each acceptor answers `accepted`. A member *learns* the value
 *    once every acceptor of that ballot has sent `accepted`: it excludes each member of the
 *    value with its cut (Psync's `exclude`), releases the rest, and installs the next view.
 *
 * Why it is safe: the acceptors of a ballot are all of the view outside its set, and a set
 * is always smaller than half the view (the **primary partition** rule: a view needs a
 * majority of the previous one), so any two ballots share an acceptor and Paxos' argument
 * gives one value per instance. The cut is above every message of an excluded member that any
 * acceptor had when it promised; after promising an acceptor inserts no more of them (they
 * are parked) except ones another member's message depends on, which that member had — so
 * no member of the next view has delivered, or sent a message depending on, anything above
 * the cut. A member that would (`CUT_CONFLICT`) leaves: it reports itself excluded.
 *
 * A side that cannot reach a majority of its view (it suspects half of it or more) is in
 * the `minority`: it proposes nothing, and its Order refuses new submits
 * (`membership.primary`) until it hears a majority again. A member excluded by the primary
 * learns it from the decision's messages once it hears the primary again, and stops.
 *
 * Nothing here but the framework's clock, Psync, the Divider and Failure Detection.
 */
import {
  DecodeError,
  DIVIDER,
  type DividerControl,
  FAILURE_DETECTION,
  type FailureDetectionControl,
  Listeners,
  MEMBERSHIP_CHANNEL,
  type MembershipControl,
  type MessageId,
  type NodeId,
  type PrimaryState,
  PSYNC,
  type PsyncControl,
  type PsyncMessage,
  type SessionContext,
  type SuspicionReason,
  type View,
  type ViewChange,
  XKernelError,
} from '@consul/xkernel'
import {
  type Ballot,
  compareBallots,
  decode,
  encode,
  type MembershipMessage,
  type Value,
} from './codec.js'
import type { ResolvedOptions } from './options.js'
import './trace.js'

type Caps = {
  psync: PsyncControl
  divider: DividerControl
  'failure-detection': FailureDetectionControl
}

interface Down {
  /** Who reported or acknowledged `down(q)` in this instance (a candidate once every voter has). */
  readonly answeredBy: Set<number>
}

interface Proposal {
  readonly ballot: Ballot
  readonly set: readonly number[]
  readonly promises: Map<number, Extract<MembershipMessage, { kind: 'promise' }>>
  readonly at: number
  accepting: boolean
}

interface Decree {
  readonly ballot: Ballot
  readonly set: readonly number[]
  readonly value: Value
  readonly acks: Set<number>
}

const ballotKey = (b: Ballot) => `${b.round}.${b.rank}`

export class MembershipSession {
  readonly control: MembershipControl
  private readonly psync: PsyncControl
  private readonly fd: FailureDetectionControl
  /** The group's members, sorted: a member's rank is its index here. */
  private readonly names: readonly NodeId[]
  private readonly rank = new Map<NodeId, number>()
  private readonly me: number
  private current: View
  private primaryState: PrimaryState = 'primary'
  private instance = 0
  // ---- this instance ----
  private downs = new Map<number, Down>()
  /** Members some `propose` of this instance named (the set only grows). */
  private proposed = new Set<number>()
  /** Members on hold here in this instance. */
  private held = new Set<number>()
  private promised: Ballot | undefined
  private acceptedHere: { ballot: Ballot; set: readonly number[]; value: Value } | undefined
  private decrees = new Map<string, Decree>()
  private proposal: Proposal | undefined
  private maxRound = 0
  private decidingOpen = false
  // ---- across instances ----
  /** Members this replica's Failure Detection suspects (with its reason), in the view. */
  private readonly suspects = new Map<NodeId, SuspicionReason | undefined>()
  /** Members whose suspicion was nacked, and when: not reported again before `retryAfterMs`. */
  private readonly nackedAt = new Map<NodeId, number>()
  /** Members reported (`down`) by this replica in this instance. */
  private reported = new Set<number>()
  /** The latest message delivered from each member (the nack test). */
  private readonly last: (MessageId | undefined)[]
  private restoring = false
  private closed = false
  private readonly viewHandlers = new Listeners<[ViewChange]>(
    () => new XKernelError('INVALID_ARGUMENT', 'onViewChange takes a function'),
  )
  private readonly stateHandlers = new Listeners<[PrimaryState, View]>(
    () => new XKernelError('INVALID_ARGUMENT', 'onStateChange takes a function'),
  )
  private readonly offs: (() => void)[] = []

  constructor(
    private readonly ctx: SessionContext<Caps>,
    private readonly options: ResolvedOptions,
  ) {
    this.psync = ctx.get(PSYNC)
    this.fd = ctx.get(FAILURE_DETECTION)
    this.names = [...ctx.group.members].sort()
    for (const [i, n] of this.names.entries()) this.rank.set(n, i)
    this.me = this.rank.get(ctx.self)!
    this.last = this.names.map(() => undefined)
    this.current = { id: 0, members: this.names }
    this.fd.delegate()
    const divider = ctx.get(DIVIDER)
    this.offs.push(
      divider.subscribe('membership', {
        channels: [MEMBERSHIP_CHANNEL],
        deliver: (m) => this.deliver(m),
      }),
      this.psync.onDeliver((m) => {
        const r = this.rank.get(m.sender)
        if (r !== undefined) this.last[r] = m.id
      }),
      this.fd.onSuspect((s) => this.suspectLocally(s.member, s.reason)),
      this.fd.onAlive((member) => this.heardAgain(member)),
    )
    this.control = {
      view: () => this.current,
      state: () => this.primaryState,
      onViewChange: (handler) => this.viewHandlers.add(handler),
      onStateChange: (handler) => this.stateHandlers.add(handler),
      suspect: (member) => {
        if (member === ctx.self)
          throw new XKernelError('INVALID_ARGUMENT', 'a member cannot suspect itself')
        if (typeof member !== 'string' || !this.current.members.includes(member))
          throw new XKernelError(
            'INVALID_ARGUMENT',
            `${String(member)} is not a member of view ${this.current.id} of ${ctx.group.port}`,
          )
        this.suspectLocally(member, undefined)
      },
      deciding: () => [...this.pending()].sort((a, b) => a - b).map((i) => this.names[i]!),
    }
  }

  start(): void {
    this.ctx.clock.setTimer(this.options.tickMs, () => this.tick())
  }

  close(): void {
    this.closed = true
    for (const off of this.offs.splice(0)) off()
  }

  gauges(): Record<string, number> {
    return {
      viewId: this.current.id,
      viewSize: this.current.members.length,
      decidingNow: this.pending().size,
      minority: this.primaryState === 'minority' ? 1 : 0,
      excluded: this.primaryState === 'excluded' ? 1 : 0,
    }
  }

  // ---- inputs ------------------------------------------------------------------------------

  private inView(r: number): boolean {
    return this.current.members.includes(this.names[r]!)
  }

  private suspectLocally(member: NodeId, reason: SuspicionReason | undefined): void {
    if (this.closed || this.primaryState === 'excluded') return
    if (!this.current.members.includes(member) || member === this.ctx.self) return
    this.suspects.set(member, reason)
    this.report(this.rank.get(member)!)
    this.updateState()
  }

  private heardAgain(member: NodeId): void {
    this.suspects.delete(member)
    this.updateState()
  }

  private report(q: number): void {
    // A ballot names this member: the others park its messages, so to it they look deaf —
    // those are no suspicions to act on.
    if (this.reported.has(q) || this.proposed.has(this.me)) return
    const at = this.nackedAt.get(this.names[q]!)
    if (at !== undefined && this.ctx.clock.now() - at < this.options.retryAfterMs) return
    this.reported.add(q)
    const deaf = (this.suspects.get(this.names[q]!)?.unacknowledgedForMs ?? 0) > 0
    this.send({ kind: 'down', instance: this.instance, member: q, deaf })
  }

  private send(message: MembershipMessage): void {
    if (this.restoring || this.closed) return
    try {
      this.psync.send(encode(message))
      this.ctx.counters.inc(`sent.${message.kind}`)
    } catch (error) {
      // NOT_READY after a restart, CLOSED at the end: the retry timer asks again.
      this.ctx.counters.inc('notSent')
      this.ctx.log.debug('membership message not sent', {
        kind: message.kind,
        error: String(error),
      })
    }
  }

  private deliver(m: PsyncMessage): void {
    if (this.closed) return
    const from = this.rank.get(m.sender)
    if (from === undefined) return
    let message: MembershipMessage
    try {
      message = decode(m.payload, this.names.length)
    } catch (error) {
      if (!DecodeError.isInstance(error)) throw error
      this.ctx.counters.inc('droppedMalformed')
      this.ctx.log.warn('malformed membership message dropped', {
        from: m.sender,
        error: String(error),
      })
      return
    }
    // A message about an earlier decision (its sender had not learned it yet) is moot.
    if (message.instance !== this.instance) {
      this.ctx.counters.inc('droppedStale')
      return
    }
    if (!this.inView(from)) return
    // Replayed from the log after a restart: the same state changes, no answers (they were
    // sent, or never reached the wire, the first time).
    this.restoring = m.restored
    try {
      this.handle(m, from, message)
    } finally {
      this.restoring = false
    }
  }

  private handle(m: PsyncMessage, from: number, message: MembershipMessage): void {
    switch (message.kind) {
      case 'down':
        this.onDown(m, from, message.member, message.deaf)
        return
      case 'ackDown':
        this.onAckDown(from, message.member)
        return
      case 'nackDown':
        this.onNackDown(message.member)
        return
      case 'propose':
        this.onPropose(from, message.round, message.set)
        return
      case 'promise':
        this.onPromise(from, message)
        return
      case 'accept':
        this.onAccept(from, message.round, message.set, message.value)
        return
      case 'accepted':
        this.onAccepted(from, message.ballot)
        return
    }
  }

  // ---- step 1: reports ---------------------------------------------------------------------

  private onDown(m: PsyncMessage, from: number, q: number, deaf: boolean): void {
    if (!this.inView(q)) return
    // An accusation from a member this replica suspects itself, or that a ballot already
    // names, is not credible (a deaf minority accuses everyone it stopped hearing).
    if (from !== this.me && !this.credible(from)) {
      this.ctx.counters.inc('ignoredDown')
      return
    }
    let down = this.downs.get(q)
    if (down === undefined) {
      down = { answeredBy: new Set() }
      this.downs.set(q, down)
    }
    down.answeredBy.add(from)
    if (from !== this.me) {
      // Newer evidence than the reporter had: `q` spoke after what the `down` saw. (A deaf
      // member keeps speaking: that is no evidence it hears the reporter — only it may nack.)
      const last = this.last[q]
      const newer =
        q === this.me || (!deaf && last !== undefined && !this.psync.precedes(last, m.id))
      this.send({ kind: newer ? 'nackDown' : 'ackDown', instance: this.instance, member: q })
    }
    this.openDeciding()
    this.progress()
  }

  private onAckDown(from: number, q: number): void {
    this.downs.get(q)?.answeredBy.add(from)
    this.progress()
  }

  private onNackDown(q: number): void {
    // Dropped for this instance unless a ballot already named it (then the set only grows).
    this.downs.delete(q)
    this.reported.delete(q)
    const name = this.names[q]!
    this.nackedAt.set(name, this.ctx.clock.now())
    this.ctx.counters.inc('nacked')
    // Nothing left to decide: Failure Detection's timeouts go back to normal.
    if (this.pending().size === 0) this.closeDeciding()
    this.progress()
  }

  /**
   * Whether this replica follows `r`'s reports and ballots: not while it suspects `r` itself
   * or a ballot names `r` (a deaf minority accuses everyone it stopped hearing, and could
   * otherwise drive a ballot through a majority member that still hears it).
   */
  private credible(r: number): boolean {
    return !this.suspects.has(this.names[r]!) && !this.proposed.has(r) && !this.held.has(r)
  }

  /** Members a decision of this instance is about: reported, proposed or held. */
  private pending(): Set<number> {
    const out = new Set<number>([...this.downs.keys(), ...this.proposed, ...this.held])
    return out
  }

  /** A reported member every member outside the pending set has acknowledged. */
  private candidates(): number[] {
    const pending = this.pending()
    const voters = this.viewRanks().filter((r) => !pending.has(r))
    return [...this.downs.entries()]
      .filter(([, d]) => voters.every((v) => d.answeredBy.has(v)))
      .map(([q]) => q)
  }

  private viewRanks(): number[] {
    return this.current.members.map((n) => this.rank.get(n)!)
  }

  // ---- step 2: the ballot ------------------------------------------------------------------

  private coordinator(): number | undefined {
    const pending = this.pending()
    return this.viewRanks().find((r) => !pending.has(r) && !this.suspects.has(this.names[r]!))
  }

  /** Proposes when this member coordinates and there is something new to decide. */
  private progress(): void {
    if (this.restoring || this.closed || this.primaryState === 'excluded') return
    if (this.proposed.has(this.me)) return
    // A replica that does not hear a majority of its view coordinates nothing.
    if (this.primaryState !== 'primary') return
    if (this.coordinator() !== this.me) return
    const set = new Set<number>([...this.candidates(), ...this.proposed, ...this.held])
    if (set.size === 0) return
    if (
      this.proposal !== undefined &&
      this.proposal.set.length === set.size &&
      this.proposal.set.every((r) => set.has(r)) &&
      this.ctx.clock.now() - this.proposal.at < this.options.retryAfterMs
    )
      return
    if ((this.current.members.length - set.size) * 2 <= this.current.members.length) {
      // No majority of the view outside the set: this side cannot decide.
      this.updateState()
      return
    }
    const round = this.maxRound + 1
    this.maxRound = round
    const sorted = [...set].sort((a, b) => a - b)
    this.proposal = {
      ballot: { round, rank: this.me },
      set: sorted,
      promises: new Map(),
      at: this.ctx.clock.now(),
      accepting: false,
    }
    this.ctx.counters.inc('ballots')
    this.send({ kind: 'propose', instance: this.instance, round, set: sorted })
  }

  private onPropose(from: number, round: number, set: readonly number[]): void {
    if (
      set.some((r) => !this.inView(r)) ||
      set.includes(from) ||
      set.length === 0 ||
      (this.current.members.length - set.length) * 2 <= this.current.members.length
    ) {
      this.ctx.counters.inc('droppedInvalid')
      return
    }
    if (from !== this.me && !this.credible(from)) {
      this.ctx.counters.inc('ignoredBallot')
      return
    }
    if (round > this.maxRound) this.maxRound = round
    for (const r of set) this.proposed.add(r)
    this.openDeciding()
    const ballot = { round, rank: from }
    // Not an acceptor of a ballot that excludes it; a stale ballot gets no answer.
    if (set.includes(this.me)) return
    if (this.promised !== undefined && compareBallots(ballot, this.promised) <= 0) {
      this.progress()
      return
    }
    this.promised = ballot
    const holds: [number, number][] = []
    for (const r of set) holds.push([r, this.hold(r)])
    this.send({
      kind: 'promise',
      instance: this.instance,
      ballot,
      holds,
      accepted: this.acceptedHere,
    })
    // A new set may make this member the coordinator of a bigger one.
    this.progress()
  }

  /** Puts `r` on hold in Psync (once per instance); returns its highest seq here. */
  private hold(r: number): number {
    const name = this.names[r]!
    this.held.add(r)
    return this.psync.hold(name)
  }

  private onPromise(from: number, promise: Extract<MembershipMessage, { kind: 'promise' }>): void {
    const p = this.proposal
    if (p === undefined || p.accepting || compareBallots(promise.ballot, p.ballot) !== 0) return
    if (p.set.includes(from)) return
    p.promises.set(from, promise)
    const acceptors = this.viewRanks().filter((r) => !p.set.includes(r))
    if (!acceptors.every((r) => p.promises.has(r))) return
    // Paxos: the highest-ballot value accepted so far, or a fresh one.
    let chosen: { ballot: Ballot; value: Value } | undefined
    for (const pr of p.promises.values())
      if (
        pr.accepted !== undefined &&
        (chosen === undefined || compareBallots(pr.accepted.ballot, chosen.ballot) > 0)
      )
        chosen = pr.accepted
    const value: Value = chosen?.value ?? {
      members: p.set,
      cuts: p.set.map((r) =>
        Math.max(
          0,
          ...[...p.promises.values()].map((pr) => pr.holds.find(([m]) => m === r)?.[1] ?? 0),
        ),
      ),
    }
    p.accepting = true
    this.send({ kind: 'accept', instance: this.instance, round: p.ballot.round, set: p.set, value })
  }

  private onAccept(from: number, round: number, set: readonly number[], value: Value): void {
    if (
      set.includes(from) ||
      set.some((r) => !this.inView(r)) ||
      value.members.some((r) => !this.inView(r)) ||
      value.members.length === 0 ||
      (this.current.members.length - set.length) * 2 <= this.current.members.length
    ) {
      this.ctx.counters.inc('droppedInvalid')
      return
    }
    const ballot = { round, rank: from }
    const key = ballotKey(ballot)
    // Every member learns; only a credible proposer's value is accepted here.
    if (!this.decrees.has(key)) this.decrees.set(key, { ballot, set, value, acks: new Set() })
    if (from !== this.me && !this.credible(from)) {
      this.ctx.counters.inc('ignoredBallot')
      return
    }
    if (set.includes(this.me)) return
    if (this.promised !== undefined && compareBallots(ballot, this.promised) < 0) return
    this.promised = ballot
    this.acceptedHere = { ballot, set, value }
    for (const r of value.members) if (r !== this.me) this.hold(r)
    this.send({ kind: 'accepted', instance: this.instance, ballot })
  }

  private onAccepted(from: number, ballot: Ballot): void {
    const decree = this.decrees.get(ballotKey(ballot))
    if (decree === undefined || decree.set.includes(from)) return
    decree.acks.add(from)
    const acceptors = this.viewRanks().filter((r) => !decree.set.includes(r))
    if (acceptors.every((r) => decree.acks.has(r))) this.install(decree)
  }

  // ---- learning ----------------------------------------------------------------------------

  private install(decree: Decree): void {
    const { value } = decree
    const leaving = value.members.map((r) => this.names[r]!)
    const cuts: Record<NodeId, number> = {}
    let conflict: unknown
    value.members.forEach((r, i) => {
      const name = this.names[r]!
      cuts[name] = value.cuts[i]!
      if (r === this.me) return
      try {
        this.psync.exclude(name, value.cuts[i]!)
      } catch (error) {
        // Psync's error, by its code: Membership depends on the framework only.
        if ((error as { code?: unknown } | undefined)?.code !== 'CUT_CONFLICT') throw error
        conflict = error
      }
    })
    for (const r of this.held) if (!value.members.includes(r)) this.psync.release(this.names[r]!)
    const suspicions: Record<NodeId, SuspicionReason> = {}
    for (const name of leaving) {
      const reason = this.suspects.get(name)
      if (reason !== undefined) suspicions[name] = reason
      this.suspects.delete(name)
    }
    const excludedSelf = value.members.includes(this.me) || conflict !== undefined
    if (conflict !== undefined) {
      this.ctx.counters.inc('cutConflicts')
      this.ctx.log.error('this member delivered past the agreed cut: it leaves the group', {
        error: String(conflict),
      })
    }
    // Before the view changes: every member that heard `open` hears `closed`, the excluded too.
    this.closeDeciding()
    const view: View = {
      id: this.current.id + 1,
      members: this.current.members.filter((n) => !leaving.includes(n)),
    }
    this.current = view
    this.instance++
    this.downs = new Map()
    this.proposed = new Set()
    this.held = new Set()
    this.promised = undefined
    this.acceptedHere = undefined
    this.decrees = new Map()
    this.proposal = undefined
    this.maxRound = 0
    this.reported = new Set()
    this.ctx.counters.inc('views')
    const change: ViewChange = {
      view,
      joined: [],
      left:
        excludedSelf && !leaving.includes(this.ctx.self) ? [...leaving, this.ctx.self] : leaving,
      reason: {
        kind: excludedSelf ? 'excluded' : 'failure',
        decidedBy: this.names[decree.ballot.rank]!,
        cuts,
        suspicions,
      },
    }
    this.ctx.log.info('view installed', { view: view.id, members: view.members, left: change.left })
    if (this.ctx.events.has('trace.view'))
      this.ctx.events.emit('trace.view', {
        group: this.ctx.group.port,
        view: view.members,
        id: view.id,
        layer: 'membership',
      })
    this.trace(view, change)
    if (excludedSelf) this.setState('excluded')
    this.viewHandlers.emit(change)
    this.updateState()
    // Suspicions still standing go into the next decision.
    for (const name of this.suspects.keys()) this.report(this.rank.get(name)!)
    this.progress()
  }

  private trace(view: View, change: ViewChange): void {
    if (!this.ctx.events.has('trace.record')) return
    this.ctx.events.emit('trace.record', {
      kind: 'membership.view',
      group: this.ctx.group.port,
      layer: 'membership',
      data: {
        id: view.id,
        members: view.members,
        left: change.left,
        cuts: change.reason.cuts,
        decidedBy: change.reason.decidedBy,
        excluded: change.reason.kind === 'excluded',
      },
    } as never)
  }

  // ---- state -------------------------------------------------------------------------------

  private openDeciding(): void {
    if (this.decidingOpen) return
    this.decidingOpen = true
    this.emitDeciding(true)
  }

  private closeDeciding(): void {
    if (!this.decidingOpen) return
    this.decidingOpen = false
    this.emitDeciding(false)
  }

  private emitDeciding(open: boolean): void {
    if (!this.ctx.events.has('membership.deciding')) return
    for (const member of this.current.members)
      if (member !== this.ctx.self)
        this.ctx.events.emit('membership.deciding', { group: this.ctx.group.port, member, open })
  }

  /** Minority: this replica does not hear a majority of its view. */
  private updateState(): void {
    if (this.primaryState === 'excluded') return
    const view = this.current.members
    const reachable = view.filter((n) => !this.suspects.has(n)).length
    this.setState(reachable * 2 > view.length ? 'primary' : 'minority')
  }

  private setState(state: PrimaryState): void {
    if (state === this.primaryState) return
    this.primaryState = state
    this.ctx.log.warn('primary state changed', { state, view: this.current.id })
    this.ctx.counters.inc(`state.${state}`)
    if (this.ctx.events.has('membership.primary'))
      this.ctx.events.emit('membership.primary', {
        group: this.ctx.group.port,
        state,
        view: this.current.id,
      })
    this.stateHandlers.emit(state, this.current)
  }

  private tick(): void {
    if (this.closed) return
    this.ctx.clock.setTimer(this.options.tickMs, () => this.tick())
    if (this.primaryState === 'excluded') return
    // Suspicions not reported in this instance (nacked a while ago, or standing since the
    // last view) are reported again while Failure Detection still holds them.
    const suspectedNow = new Set(this.fd.suspected())
    for (const name of [...this.suspects.keys()]) {
      if (!suspectedNow.has(name)) {
        this.suspects.delete(name)
        continue
      }
      this.report(this.rank.get(name)!)
    }
    this.updateState()
    this.progress()
  }
}
