/**
 * One Membership session per group: agreed views over Failure Detection's suspicions.
 *
 * A decision (one per view change; `instance` numbers them) runs in two steps, all of it in
 * ordinary Psync messages, so every member sees every vote in causal order:
 *
 * 1. **Report.** A member that suspects `q` sends `down(q)`. Every member answers it:
 *    `nackDown(q)` when it holds a message of `q` that the `down` did not have in its past
 *    (`q` is slow, not dead: the suspicion is dropped) — for a *deaf* `down`, a message of `q`
 *    with the `down` in its past (`q` heard the accuser; awaited up to `deafProofMs`) —
 *    `ackDown(q)` otherwise. `q` becomes a *candidate* once every member of the view outside
 *    the pending set has answered `ackDown` (or reported it too).
 * 2. **Ballot** (Paxos, one decree per instance). The coordinator — the lowest-ranked member
 *    of the view that nobody has reported — proposes a set `S` (every candidate, and the set
 *    of the highest ballot whose value someone accepted). Every member outside `S` is an
 *    acceptor: on `propose` — if every member of `S` still stands reported here — it puts the
 *    members of `S` on hold in Psync (their later messages are parked, so nothing of theirs
 *    enters a wave) and promises, with the highest seq of each it holds and the value it
 *    accepted so far. With a promise from every acceptor the coordinator sends `accept` with
 *    the value — the highest-ballot accepted value reported (its set inside `S`), else `S`;
 *    each cut the highest of that value's and the promises' — and each acceptor answers
 *    `accepted`. An acceptor that accepted nothing and sees a member of its set nacked
 *    releases it and refuses that ballot: refuted ballots are abandoned. A member *learns* the value
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
 * A side that cannot reach a majority of its view (it suspects or holds half of it or more)
 * is in the `minority`: it proposes nothing, and its Order refuses new submits
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
  type NextConfiguration,
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

/** A promise with its settle functions (a pending `up()` or `leave()`). */
interface Pending<T> {
  readonly promise: Promise<T>
  readonly resolve: (value: T) => void
  readonly reject: (error: Error) => void
}

function pending<T>(): Pending<T> {
  let resolve!: (value: T) => void
  let reject!: (error: Error) => void
  const promise = new Promise<T>((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

/** What the coordinated checkpoint keeps of a Membership session. */
interface MembershipCheckpoint {
  readonly v: 1
  readonly instance: number
  readonly view: View
  readonly excluded: boolean
  readonly cuts: [NodeId, number][]
  /**
   * A carried record (`carry`): the view of the configuration before, and who decided the
   * join — the view change is reported when the group opens in the new configuration.
   */
  readonly previous?: { readonly members: readonly NodeId[]; readonly decidedBy: NodeId }
}

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
  /**
   * Deaf `down(q)`s this member has not answered yet: it hears `q`, so it waits until
   * `deadline` for a message of `q` with the `down` in its past (then `nackDown`).
   */
  private deafAnswers = new Map<number, { readonly after: MessageId; readonly deadline: number }>()
  /**
   * `down`s of this instance ignored because their reporter was not credible here then (by
   * reporter and reported member): answered once the reporter is credible again, or the
   * reporter would wait for this answer for ever.
   */
  private ignoredDowns = new Map<
    string,
    { readonly q: number; readonly m: PsyncMessage; readonly deaf: boolean }
  >()
  /** A credible ballot of this instance names this member (it reports nobody meanwhile). */
  private namedSelf = false
  /** Members on hold here in this instance. */
  private held = new Set<number>()
  /**
   * The highest ballot promised here. After a release (a member of its set was nacked
   * before anything was accepted here) its rank is past every member's: this acceptor then
   * refuses that ballot's `accept`.
   */
  private promised: Ballot | undefined
  /** The highest-ballot value known to be accepted by someone in this instance, and its set. */
  private acceptedKnown: { ballot: Ballot; set: readonly number[] } | undefined
  /** Sets of accepted values a promise quorum of this member's ballots reported. */
  private mustCover = new Set<number>()
  /** Members of every set whose value someone accepted in this instance, as far as seen here. */
  private acceptedMembers = new Set<number>()
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
  /** A pending `control.up()`: its `up` message (once sent) and who acknowledged it. */
  private upWait:
    | (Pending<View> & { sent: MessageId | undefined; readonly acks: Set<number> })
    | undefined
  /** Members that asked to leave (`leave`), until a view without them is installed. */
  private readonly leaves = new Set<number>()
  /** This member called `leave()` (or replayed its own `leave`): it waits to be excluded. */
  private leavingSelf = false
  /** The instance this member last sent its `leave` in. */
  private leaveSentIn = -1
  /** A pending `control.leave()`. */
  private leaveWait: Pending<ViewChange> | undefined
  private restoring = false
  private closed = false
  /** This member installed the view that removed it. */
  private installedOwnExit = false
  /** Restored from a carried record in the first open of a configuration: reported at start. */
  private joinReport: { members: readonly NodeId[]; decidedBy: NodeId } | undefined
  /** A view is being installed: deliveries wait in `deferred` until it stands. */
  private installing = false
  private deferred: PsyncMessage[] = []
  /** Every exclusion this member applied in Psync, with its cut (the checkpoint keeps them). */
  private readonly cutsApplied = new Map<NodeId, number>()
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
    this.current = { id: 0, configuration: ctx.group.configuration, members: this.names }
    this.fd.delegate()
    const divider = ctx.get(DIVIDER)
    this.offs.push(
      divider.subscribe('membership', {
        channels: [MEMBERSHIP_CHANNEL],
        deliver: (m) => this.deliver(m),
      }),
      this.psync.onDeliver((m) => {
        const r = this.rank.get(m.sender)
        if (r === undefined) return
        this.last[r] = m.id
        const waiting = this.deafAnswers.get(r)
        // `q` heard the accusation: it is not deaf to the accuser.
        if (waiting !== undefined && this.psync.precedes(waiting.after, m.id)) {
          this.deafAnswers.delete(r)
          // Replayed after a restart: answered the first time (or never on the wire).
          if (!m.restored) this.send({ kind: 'nackDown', instance: this.instance, member: r })
        }
      }),
      this.psync.onExcluded((notice) => this.toldExcluded(notice.by, notice.cut)),
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
      up: () => this.up(),
      leave: () => this.leave(),
    }
  }

  start(): void {
    this.ctx.clock.setTimer(this.options.tickMs, () => this.tick())
    const report = this.joinReport
    this.joinReport = undefined
    if (report !== undefined) this.reportJoin(report)
  }

  /**
   * The state for the group's next configuration (a join): its view 0 — the new member list —
   * and this one's members, so that the new session reports the change.
   */
  carry(next: NextConfiguration): Uint8Array {
    const record: MembershipCheckpoint = {
      v: 1,
      instance: 0,
      view: { id: 0, configuration: next.configuration, members: [...next.members] },
      excluded: false,
      cuts: [],
      previous: { members: this.current.members, decidedBy: next.decidedBy },
    }
    return new TextEncoder().encode(JSON.stringify(record))
  }

  /** The first view of a configuration this member moved into: reported as a view change. */
  private reportJoin(previous: { members: readonly NodeId[]; decidedBy: NodeId }): void {
    const view = this.current
    const before = new Set(previous.members)
    const now = new Set(view.members)
    const change: ViewChange = {
      view,
      joined: view.members.filter((n) => !before.has(n)),
      left: previous.members.filter((n) => !now.has(n)),
      reason: { kind: 'join', decidedBy: previous.decidedBy, cuts: {}, suspicions: {}, leaves: [] },
    }
    this.ctx.counters.inc('views')
    this.record(view, change)
    this.viewHandlers.emit(change)
  }

  /** A view installed: logged, and recorded for the simulator's checkers. */
  private record(view: View, change: ViewChange): void {
    this.ctx.log.info('view installed', {
      view: view.id,
      configuration: view.configuration,
      members: view.members,
      joined: change.joined,
      left: change.left,
    })
    if (this.ctx.events.has('trace.view'))
      this.ctx.events.emit('trace.view', {
        group: this.ctx.group.port,
        view: view.members,
        id: view.id,
        layer: 'membership',
      })
    this.trace(view, change)
  }

  close(): void {
    this.closed = true
    for (const off of this.offs.splice(0)) off()
    this.failUp(
      new XKernelError(
        'GROUP_CLOSED',
        `group ${this.ctx.group.port} closed before up was acknowledged`,
      ),
    )
    this.endLeave()?.reject(
      new XKernelError(
        'GROUP_CLOSED',
        `group ${this.ctx.group.port} closed before the leave was decided`,
      ),
    )
  }

  /** A pending `control.up()` ends with `error` (none pending: nothing to do). */
  private failUp(error: XKernelError): void {
    const wait = this.upWait
    this.upWait = undefined
    wait?.reject(error)
  }

  /** The pending `leave()`, taken (it is settled by the caller). */
  private endLeave(): Pending<ViewChange> | undefined {
    const wait = this.leaveWait
    this.leaveWait = undefined
    return wait
  }

  private excludedError(): XKernelError {
    return new XKernelError('EXCLUDED', `${this.ctx.self} was excluded from ${this.ctx.group.port}`)
  }

  /**
   * The session's state for the coordinated checkpoint — the view, the instance and every
   * exclusion applied, which Psync's pruned log can no longer replay — or `undefined` while a
   * decision is open (promises must not be forgotten: the checkpoint waits for a quiet
   * boundary).
   */
  checkpoint(): Uint8Array | undefined {
    if (
      this.downs.size > 0 ||
      this.held.size > 0 ||
      this.deafAnswers.size > 0 ||
      this.promised !== undefined ||
      this.acceptedHere !== undefined ||
      this.proposal !== undefined ||
      this.decrees.size > 0
    )
      return undefined
    const record: MembershipCheckpoint = {
      v: 1,
      instance: this.instance,
      view: this.current,
      excluded: this.primaryState === 'excluded',
      cuts: [...this.cutsApplied],
    }
    return new TextEncoder().encode(JSON.stringify(record))
  }

  /** Takes back `checkpoint()`'s state after a crash, before Psync starts replaying. */
  restore(state: Uint8Array): void {
    let record: MembershipCheckpoint
    try {
      record = JSON.parse(new TextDecoder().decode(state)) as MembershipCheckpoint
    } catch {
      throw new XKernelError('INVALID_ARGUMENT', 'not a membership checkpoint (undecodable)')
    }
    const members = record?.view?.members
    if (
      record?.v !== 1 ||
      !Number.isSafeInteger(record.instance) ||
      record.instance < 0 ||
      !Number.isSafeInteger(record.view.id) ||
      !Array.isArray(members) ||
      !members.every((n) => this.rank.has(n)) ||
      !Array.isArray(record.cuts) ||
      !record.cuts.every(
        (c) => Array.isArray(c) && this.rank.has(c[0]) && Number.isSafeInteger(c[1]) && c[1] >= 0,
      )
    )
      throw new XKernelError('INVALID_ARGUMENT', 'not a membership checkpoint of this group')
    this.instance = record.instance
    this.current = {
      id: record.view.id,
      configuration: this.ctx.group.configuration,
      members: [...members],
    }
    const previous = record.previous
    if (
      previous !== undefined &&
      this.ctx.group.reconfigured &&
      Array.isArray(previous.members) &&
      typeof previous.decidedBy === 'string'
    )
      this.joinReport = { members: [...previous.members], decidedBy: previous.decidedBy }
    for (const [name, cut] of record.cuts) {
      if (name === this.ctx.self || this.cutsApplied.has(name)) continue
      this.psync.exclude(name, cut)
      this.cutsApplied.set(name, cut)
    }
    if (record.excluded) this.primaryState = 'excluded'
    this.ctx.counters.inc('restoredFromCheckpoint')
  }

  gauges(): Record<string, number> {
    return {
      viewId: this.current.id,
      viewSize: this.current.members.length,
      decidingNow: this.pending().size,
      minority: this.primaryState === 'minority' ? 1 : 0,
      leaving: this.primaryState === 'leaving' ? 1 : 0,
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
    if (this.reported.has(q) || this.namedSelf) return
    const at = this.nackedAt.get(this.names[q]!)
    if (at !== undefined && this.ctx.clock.now() - at < this.options.retryAfterMs) return
    this.reported.add(q)
    const deaf = (this.suspects.get(this.names[q]!)?.unacknowledgedForMs ?? 0) > 0
    this.send({ kind: 'down', instance: this.instance, member: q, deaf })
  }

  private send(message: MembershipMessage): MessageId | undefined {
    if (this.restoring || this.closed) return undefined
    try {
      const sent = this.psync.send(encode(message))
      this.ctx.counters.inc(`sent.${message.kind}`)
      return sent.id
    } catch (error) {
      // NOT_READY after a restart, CLOSED at the end: the retry timer asks again.
      this.ctx.counters.inc('notSent')
      this.ctx.log.debug('membership message not sent', {
        kind: message.kind,
        error: String(error),
      })
      return undefined
    }
  }

  private deliver(m: PsyncMessage): void {
    // It installed the view that removed it (it was excluded, or it left): the decisions after
    // that one are not its own.
    if (this.closed || this.installedOwnExit) return
    // Delivered by Psync while a view is being installed (the exclusions and releases hand
    // parked messages on at once): handled once the new view stands.
    if (this.installing) {
      this.deferred.push(m)
      return
    }
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
      case 'up':
        this.onUp(from, message.member)
        return
      case 'ackUp':
        this.onAckUp(m, from, message.member)
        return
      case 'leave':
        this.onLeave(from, message.member)
        return
    }
  }

  /**
   * A member that excluded this one says so (Psync's notice, sent to an excluded member that
   * still talks): the decision's messages may be pruned everywhere, so this may be the only
   * way to learn it. This member stops ordering, as when it learns the decision itself — it
   * installs no view (it does not know the decision's value), it only leaves.
   */
  private toldExcluded(by: NodeId, cut: number): void {
    if (this.closed || this.primaryState === 'excluded') return
    this.ctx.counters.inc('excludedByNotice')
    this.ctx.log.error('the primary excluded this member: it leaves the group', {
      toldBy: by,
      cut,
      view: this.current.id,
    })
    this.closeDeciding()
    this.setState('excluded')
    this.failUp(this.excludedError())
    // Asked to leave: this is the answer, though the decision itself is not known here.
    this.endLeave()?.resolve({
      view: this.current,
      joined: [],
      left: [this.ctx.self],
      reason: {
        kind: 'leave',
        decidedBy: by,
        cuts: { [this.ctx.self]: cut },
        suspicions: {},
        leaves: [this.ctx.self],
      },
    })
  }

  // ---- up: a restarted member announces itself --------------------------------------------

  /** Why `up()` / `leave()` cannot start now: excluded or closed (undefined: they can). */
  private cannotAct(): XKernelError | undefined {
    if (this.primaryState === 'excluded') return this.excludedError()
    if (this.closed)
      return new XKernelError('GROUP_CLOSED', `group ${this.ctx.group.port} is closed`)
    return undefined
  }

  private up(): Promise<View> {
    const cannot = this.cannotAct()
    if (cannot !== undefined) return Promise.reject(cannot)
    if (this.upWait !== undefined) return this.upWait.promise
    this.upWait = { ...pending<View>(), sent: undefined, acks: new Set() }
    const { promise } = this.upWait
    this.sendUp()
    return promise
  }

  private sendUp(): void {
    const wait = this.upWait
    if (wait === undefined) return
    // Not sent (Psync not ready yet after a restart): the tick sends it again.
    wait.sent = this.send({ kind: 'up', instance: this.instance, member: this.me })
    this.checkUp()
  }

  private checkUp(): void {
    const wait = this.upWait
    if (wait === undefined || wait.sent === undefined) return
    if (!this.viewRanks().every((r) => r === this.me || wait.acks.has(r))) return
    this.upWait = undefined
    this.ctx.counters.inc('upAcknowledged')
    wait.resolve(this.current)
  }

  private onUp(from: number, q: number): void {
    if (q !== from) {
      this.ctx.counters.inc('droppedInvalid')
      return
    }
    if (from === this.me) return
    // Its own word that it is alive and hears: as good as a nack of any report of it.
    if (this.downs.has(q) || this.held.has(q) || this.deafAnswers.has(q)) this.onNackDown(q)
    this.send({ kind: 'ackUp', instance: this.instance, member: q })
  }

  private onAckUp(m: PsyncMessage, from: number, q: number): void {
    const wait = this.upWait
    if (q !== this.me || from === this.me || wait?.sent === undefined) return
    // Only answers to this `up` (not replayed answers to one before a restart).
    if (!this.psync.precedes(wait.sent, m.id)) return
    wait.acks.add(from)
    this.checkUp()
  }

  // ---- leave: a member asks to go ----------------------------------------------------------

  private leave(): Promise<ViewChange> {
    const cannot = this.cannotAct()
    if (cannot !== undefined) return Promise.reject(cannot)
    if (this.leaveWait !== undefined) return this.leaveWait.promise
    const n = this.current.members.length
    if ((n - 1) * 2 <= n)
      return Promise.reject(
        new XKernelError(
          'INVALID_ARGUMENT',
          `view ${this.current.id} of ${this.ctx.group.port} has ${n} member(s): without ${this.ctx.self} the others would not be a majority of it, so no view can be decided without it (close the group instead)`,
        ),
      )
    this.leaveWait = pending<ViewChange>()
    const { promise } = this.leaveWait
    this.leavingSelf = true
    this.ctx.counters.inc('leavesAsked')
    this.ctx.log.info('leaving the group', { view: this.current.id })
    this.setState('leaving')
    this.sendLeave()
    return promise
  }

  /** Sends `leave(self)` once per instance (again after a view change; the tick retries). */
  private sendLeave(): void {
    if (!this.leavingSelf || this.leaveSentIn === this.instance) return
    if (this.send({ kind: 'leave', instance: this.instance, member: this.me }) !== undefined)
      this.leaveSentIn = this.instance
  }

  private onLeave(from: number, q: number): void {
    if (q !== from) {
      this.ctx.counters.inc('droppedInvalid')
      return
    }
    this.leaves.add(q)
    if (q === this.me) {
      // Replayed after a restart, the call before the crash stands.
      this.leavingSelf = true
      this.leaveSentIn = Math.max(this.leaveSentIn, this.instance)
      if (this.primaryState !== 'excluded') this.setState('leaving')
    }
    // Its own word: a report every member acknowledges, and nothing can refute.
    const down = this.downOf(q)
    down.answeredBy.add(q)
    this.deafAnswers.delete(q)
    if (from !== this.me && !down.answeredBy.has(this.me))
      this.send({ kind: 'ackDown', instance: this.instance, member: q })
    this.openDeciding()
    this.progress()
  }

  // ---- step 1: reports ---------------------------------------------------------------------

  /** The report of `q` in this instance, opened if there is none yet. */
  private downOf(q: number): Down {
    let down = this.downs.get(q)
    if (down === undefined) {
      down = { answeredBy: new Set() }
      this.downs.set(q, down)
    }
    return down
  }

  private onDown(m: PsyncMessage, from: number, q: number, deaf: boolean): void {
    if (!this.inView(q)) return
    // An accusation from a member this replica suspects itself, or that a ballot already
    // names, is not credible (a deaf minority accuses everyone it stopped hearing) — it is
    // answered if its reporter becomes credible again. An accusation of this member is
    // refuted at once whoever makes it: its own word is the best evidence there is.
    if (from !== this.me && q !== this.me && !this.credible(from)) {
      this.ctx.counters.inc('ignoredDown')
      const key = `${from}:${q}`
      if (!this.ignoredDowns.has(key)) this.ignoredDowns.set(key, { q, m, deaf })
      return
    }
    const down = this.downOf(q)
    down.answeredBy.add(from)
    if (from !== this.me) {
      const name = this.names[q]!
      if (deaf && q !== this.me && !this.suspects.has(name)) {
        // A deaf member keeps speaking, so its speech so far is no evidence that it hears
        // the reporter; a message of `q` that has this `down` in its past is. Wait for one.
        if (!this.deafAnswers.has(q))
          this.deafAnswers.set(q, {
            after: m.id,
            deadline: this.ctx.clock.now() + this.options.deafProofMs,
          })
      } else {
        // Newer evidence than the reporter had: `q` spoke after what the `down` saw.
        const last = this.last[q]
        // A member that asked to leave does not refute a report of itself.
        const newer =
          (q === this.me && !this.leavingSelf) ||
          (!deaf && !this.leaves.has(q) && last !== undefined && !this.psync.precedes(last, m.id))
        this.send({ kind: newer ? 'nackDown' : 'ackDown', instance: this.instance, member: q })
      }
    }
    this.openDeciding()
    this.progress()
  }

  private onAckDown(from: number, q: number): void {
    this.downs.get(q)?.answeredBy.add(from)
    this.progress()
  }

  private onNackDown(q: number): void {
    // A member leaving by its own word stays reported, alive or not.
    if (this.leaves.has(q)) return
    // Evidence that `q` is alive and hears: the report is dropped for this instance.
    this.downs.delete(q)
    this.reported.delete(q)
    this.deafAnswers.delete(q)
    for (const [key, ignored] of [...this.ignoredDowns])
      if (ignored.q === q) this.ignoredDowns.delete(key)
    if (q === this.me) this.namedSelf = false
    const name = this.names[q]!
    this.nackedAt.set(name, this.ctx.clock.now())
    this.ctx.counters.inc('nacked')
    // Not accepted anything yet: the hold on `q` ends, and the ballot promised here (which
    // names it) is refused from now on — it can no longer be chosen, so its cut is moot.
    if (this.acceptedHere === undefined && this.held.delete(q)) {
      this.psync.release(name)
      if (this.promised !== undefined)
        this.promised = { round: this.promised.round, rank: this.names.length }
      this.ctx.counters.inc('released')
    }
    // Nothing left to decide: Failure Detection's timeouts go back to normal.
    if (this.pending().size === 0) this.closeDeciding()
    this.updateState()
    this.progress()
  }

  /**
   * Whether this replica follows `r`'s reports and ballots: not while it suspects `r` itself
   * or a ballot names `r` (a deaf minority accuses everyone it stopped hearing, and could
   * otherwise drive a ballot through a majority member that still hears it).
   */
  private credible(r: number): boolean {
    return !this.suspects.has(this.names[r]!) && !this.held.has(r)
  }

  /**
   * Members a decision of this instance is about: reported, held here, or in the set of the
   * highest ballot whose value someone accepted.
   */
  private pending(): Set<number> {
    return new Set<number>([...this.downs.keys(), ...this.held, ...(this.acceptedKnown?.set ?? [])])
  }

  /** Records that someone accepted `ballot`'s value (the highest such ballot is kept). */
  private knowAccepted(ballot: Ballot, set: readonly number[]): void {
    for (const r of set) this.acceptedMembers.add(r)
    if (this.acceptedKnown === undefined || compareBallots(ballot, this.acceptedKnown.ballot) > 0)
      this.acceptedKnown = { ballot, set }
  }

  /** A reported member every member outside the pending set has acknowledged. */
  private candidates(pending: ReadonlySet<number>): number[] {
    const voters = this.viewRanks().filter((r) => !pending.has(r))
    return [...this.downs.entries()]
      .filter(([, d]) => voters.every((v) => d.answeredBy.has(v)))
      .map(([q]) => q)
  }

  private viewRanks(): number[] {
    return this.current.members.map((n) => this.rank.get(n)!)
  }

  // ---- step 2: the ballot ------------------------------------------------------------------

  private coordinator(pending: ReadonlySet<number>): number | undefined {
    return this.viewRanks().find((r) => !pending.has(r) && !this.suspects.has(this.names[r]!))
  }

  /** Proposes when this member coordinates and there is something new to decide. */
  private progress(): void {
    if (this.restoring || this.closed || this.primaryState === 'excluded') return
    if (this.namedSelf) return
    // A replica that does not hear a majority of its view coordinates nothing.
    if (this.primaryState !== 'primary') return
    const pending = this.pending()
    if (this.coordinator(pending) !== this.me) return
    // Paxos: a value someone accepted may have been chosen, so its set is proposed again
    // (with the new candidates); otherwise the candidates alone.
    const set = new Set<number>([
      ...this.candidates(pending),
      ...(this.acceptedKnown?.set ?? []),
      ...this.mustCover,
    ])
    // A value someone accepted names this member: another member coordinates it.
    if (set.size === 0 || set.has(this.me)) return
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
    this.openDeciding()
    const ballot = { round, rank: from }
    // Every member of the set must still stand reported here, or be in a value someone
    // accepted: a `nackDown` the proposer had not seen yet refutes the ballot (it comes again
    // without that member once the proposer sees the nack).
    if (!set.every((r) => this.downs.has(r) || this.acceptedMembers.has(r))) {
      this.ctx.counters.inc('refusedBallot')
      return
    }
    // Not an acceptor of a ballot that excludes it (it stops reporting and coordinating: the
    // others park its messages, so they look deaf to it); a stale ballot gets no answer.
    if (set.includes(this.me)) {
      this.namedSelf = true
      return
    }
    if (this.promised !== undefined && compareBallots(ballot, this.promised) <= 0) {
      this.progress()
      return
    }
    this.promised = ballot
    // A ballot this member promises does not name it: it is not being decided (any more).
    this.namedSelf = false
    // Nothing accepted here yet: members an earlier ballot held that this one does not name
    // are not being decided any more.
    if (this.acceptedHere === undefined)
      for (const r of [...this.held])
        if (!set.includes(r)) {
          this.held.delete(r)
          this.psync.release(this.names[r]!)
          this.ctx.counters.inc('released')
        }
    const holds: [number, number][] = []
    for (const r of set) holds.push([r, this.hold(r)])
    this.send({
      kind: 'promise',
      instance: this.instance,
      ballot,
      holds,
      accepted: this.acceptedHere,
    })
    this.updateState()
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
    // Every member learns from every promise what someone accepted.
    if (promise.accepted !== undefined)
      this.knowAccepted(promise.accepted.ballot, promise.accepted.set)
    const p = this.proposal
    if (p === undefined || p.accepting || compareBallots(promise.ballot, p.ballot) !== 0) return
    if (p.set.includes(from)) return
    p.promises.set(from, promise)
    const acceptors = this.viewRanks().filter((r) => !p.set.includes(r))
    if (!acceptors.every((r) => p.promises.has(r))) return
    // Paxos: the highest-ballot value accepted so far, or a fresh one.
    let chosen: { ballot: Ballot; set: readonly number[]; value: Value } | undefined
    for (const pr of p.promises.values())
      if (
        pr.accepted !== undefined &&
        (chosen === undefined || compareBallots(pr.accepted.ballot, chosen.ballot) > 0)
      )
        chosen = pr.accepted
    if (chosen !== undefined && !chosen.set.every((r) => p.set.includes(r))) {
      // Its set must be inside this ballot's (so this ballot's acceptors were all its
      // acceptors): a new ballot with both sets.
      for (const r of chosen.set) this.mustCover.add(r)
      this.proposal = undefined
      this.progress()
      return
    }
    const heldHere = (r: number) =>
      Math.max(
        0,
        ...[...p.promises.values()].map((pr) => pr.holds.find(([m]) => m === r)?.[1] ?? 0),
      )
    // A value accepted before keeps its members; its cuts rise to what the acceptors hold
    // now. If it was chosen, every acceptor of it has held its members since it promised,
    // so nothing rises; if not, any value is safe — and an acceptor that released a member
    // meanwhile (a nack) must not find the cut below what it has delivered.
    const members = chosen?.value.members ?? p.set
    const value: Value = {
      members,
      cuts: members.map((r, i) => Math.max(chosen?.value.cuts[i] ?? 0, heldHere(r))),
    }
    p.accepting = true
    this.send({ kind: 'accept', instance: this.instance, round: p.ballot.round, set: p.set, value })
  }

  private onAccept(from: number, round: number, set: readonly number[], value: Value): void {
    if (
      set.includes(from) ||
      set.some((r) => !this.inView(r)) ||
      value.members.some((r) => !this.inView(r) || !set.includes(r)) ||
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
    this.updateState()
    this.send({ kind: 'accepted', instance: this.instance, ballot })
  }

  private onAccepted(from: number, ballot: Ballot): void {
    const decree = this.decrees.get(ballotKey(ballot))
    if (decree === undefined || decree.set.includes(from)) return
    decree.acks.add(from)
    this.knowAccepted(decree.ballot, decree.set)
    const acceptors = this.viewRanks().filter((r) => !decree.set.includes(r))
    if (acceptors.every((r) => decree.acks.has(r))) this.install(decree)
  }

  // ---- learning ----------------------------------------------------------------------------

  /**
   * Installs the decided view. Excluding and releasing members hands their parked messages on
   * at once; Membership handles those after the install (in the new instance), never inside it
   * — a re-entrant install would apply the same exclusion twice (regression: the leave campaign,
   * seed 355).
   */
  private install(decree: Decree): void {
    this.installing = true
    try {
      this.installView(decree)
    } finally {
      this.installing = false
    }
    for (const m of this.deferred.splice(0)) this.deliver(m)
  }

  private installView(decree: Decree): void {
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
        this.cutsApplied.set(name, value.cuts[i]!)
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
    const leftByRequest = value.members.filter((r) => this.leaves.has(r)).map((r) => this.names[r]!)
    const byRequest = value.members.every((r) => this.leaves.has(r))
    // A leave not decided in this instance stands in the next (its message may be all there is).
    for (const r of value.members) this.leaves.delete(r)
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
      configuration: this.current.configuration,
      members: this.current.members.filter((n) => !leaving.includes(n)),
    }
    this.current = view
    this.instance++
    this.downs = new Map()
    this.deafAnswers = new Map()
    this.ignoredDowns = new Map()
    this.namedSelf = false
    this.held = new Set()
    this.promised = undefined
    this.acceptedKnown = undefined
    this.mustCover = new Set()
    this.acceptedMembers = new Set()
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
        kind:
          byRequest && (!excludedSelf || (this.leavingSelf && conflict === undefined))
            ? 'leave'
            : excludedSelf
              ? 'excluded'
              : 'failure',
        decidedBy: this.names[decree.ballot.rank]!,
        cuts,
        suspicions,
        leaves: leftByRequest,
      },
    }
    this.record(view, change)
    if (excludedSelf) {
      this.installedOwnExit = true
      this.setState('excluded')
    }
    this.viewHandlers.emit(change)
    const leave = excludedSelf ? this.endLeave() : undefined
    if (leave !== undefined) {
      this.ctx.counters.inc('left')
      leave.resolve(change)
    }
    if (excludedSelf) this.failUp(this.excludedError())
    else if (this.upWait !== undefined) {
      // Every member of the smaller view may have answered already; else ask again.
      this.checkUp()
      if (this.upWait !== undefined) this.sendUp()
    }
    this.updateState()
    // A leave not decided yet goes into the next decision: the leaver says it again in the new
    // instance (its first word may have reached a member only after that member installed this
    // view, as stale). Sent after its own install, it reaches every member after theirs, so
    // every answer to it follows it.
    this.sendLeave()
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
        configuration: view.configuration,
        members: view.members,
        joined: change.joined,
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
    if (this.primaryState === 'excluded' || this.leavingSelf) return
    const view = this.current.members
    // A member on hold here (a ballot this replica promised would exclude it) is not heard
    // either: its messages are parked. Counting it would let one side of a partition, still
    // waiting out a lengthened timeout for a member it is busy excluding, think it a majority.
    const reachable = view.filter(
      (n) => !this.suspects.has(n) && !this.held.has(this.rank.get(n)!),
    ).length
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
    if (this.upWait !== undefined && this.upWait.sent === undefined) this.sendUp()
    this.sendLeave()
    const now = this.ctx.clock.now()
    for (const [q, waiting] of [...this.deafAnswers])
      if (now >= waiting.deadline) {
        // No sign that `q` heard the accuser: it may well be deaf to it.
        this.deafAnswers.delete(q)
        this.send({ kind: 'ackDown', instance: this.instance, member: q })
      }
    // Accusations ignored while their reporter was not credible here: answered now it is.
    for (const [key, { q, m, deaf }] of [...this.ignoredDowns]) {
      const from = this.rank.get(m.sender)!
      if (!this.credible(from)) continue
      this.ignoredDowns.delete(key)
      this.onDown(m, from, q, deaf)
    }
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
