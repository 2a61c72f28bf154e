/**
 * Joins: a member comes into a running group — a brand-new one, or one the group excluded
 * (a false suspicion, the minority side of a partition), or one left behind by a change it
 * missed.
 *
 * Psync's member list is fixed for a conversation, so a join moves the group into its next
 * **configuration**: a new conversation with the new member list, started from the state at
 * one wave of the old one that every member agrees on.
 *
 * 1. The newcomer asks any member on the group's lobby (`JOIN`). A member of the primary
 *    whose view lacks it sends a **join request** into the conversation: an ordinary Psync
 *    message on `RECOVERY_CHANNEL` naming the joiner and the next member list (its view and
 *    the joiner). The request's wave *d* — its depth — is the same everywhere.
 * 2. On seeing a request of wave *d*, a member holds its Order after *d*
 *    (`OrderControl.holdAfter`: nothing of a later wave is delivered, early deliveries
 *    included). This is in time: no member can complete wave *d* — or deliver anything early of
 *    a later one — before it has the request (the request's sender has no message of depth ≥ *d*
 *    that does not follow it).
 * 3. Once wave *d* is complete and its messages are stable (every `'safe'` submit of waves ≤ *d*
 *    has resolved), each member moves: the first request of wave *d* (by sender, then seq) gives
 *    the member list, every request of that wave adds its joiner. The sessions' `carry` states
 *    (the application's, Membership's next view) are written as the new configuration's first
 *    checkpoint (generation 1, wave 0) in one batch with the group's new record
 *    (`SessionContext.reconfigure`), and the group opens in it. Commands of later waves were
 *    never delivered anywhere: their submits are rejected (`CLOSED`) — submit them again.
 * 4. The newcomer is told (`WELCOME`) once a member it asks is in a configuration that has it,
 *    opens the group there, and — having no checkpoint of that configuration — fetches one from
 *    a member (state transfer), restarts from it and replays.
 *
 * A member that cannot give the state at wave *d* (excluded, transferring, not at the wave
 * boundary) moves without one and fetches it likewise; one that is not in the next list stays
 * behind and asks again. A member left behind (excluded, in the minority, still recovering)
 * asks the members of its configuration every `joinRetryMs`: a member of a later configuration
 * that has it answers `WELCOME`; one whose view lacks it asks for it as above.
 */
import {
  DecodeError,
  type Lobby,
  type MembershipControl,
  type MessageId,
  messageId,
  type NodeId,
  type OrderControl,
  type PsyncControl,
  type PsyncMessage,
  RECOVERY_CHANNEL,
  type RecoveryState,
  type SessionContext,
  type StorageOp,
} from '@consul/xkernel'
import { encodeCheckpoint, encodeManifest, manifestOf } from './codec.js'
import {
  decodeLobby,
  decodeRequest,
  encodeJoin,
  encodeRefused,
  encodeRequest,
  encodeWelcome,
  JOIN,
  type JoinRequest,
  REFUSED,
  WELCOME,
} from './join-codec.js'
import type { ResolvedOptions } from './options.js'
import { HEAD_KEY, headValue, keyOf, partOps } from './store.js'

export interface JoinsHost {
  readonly ctx: SessionContext<Record<string, never>>
  readonly psync: PsyncControl
  readonly order: OrderControl
  readonly membership: MembershipControl
  readonly options: ResolvedOptions
  /** Recovery's own state (a member that is transferring has no state to carry). */
  state(): RecoveryState
}

interface Seen {
  readonly id: MessageId
  readonly sender: NodeId
  readonly seq: number
  readonly request: JoinRequest
}

interface Move {
  readonly wave: number
  readonly members: readonly NodeId[]
  readonly joined: readonly NodeId[]
  readonly decidedBy: NodeId
  readonly unstable: Set<MessageId>
}

export class Joins {
  private readonly lobby: Lobby
  /** Join requests delivered here, by wave, not yet passed. */
  private readonly byWave = new Map<number, Seen[]>()
  private barrier: number | undefined
  /** Since when the Order has been held (a join request seen, its wave not passed yet). */
  private heldSince = 0
  private move: Move | undefined
  /** The group is on its way into another configuration: nothing more happens here. */
  private moving = false
  /** Joiners this member asked for, and when. */
  private readonly asked = new Map<NodeId, number>()
  private lastAsk = Number.NEGATIVE_INFINITY
  /** Members that asked to join afresh though they had spoken here (`spokeHere`). */
  private readonly afresh = new Map<
    NodeId,
    { readonly first: number; last: number; suspectedAt: number | undefined }
  >()
  private refusalLogged = false
  private closed = false

  constructor(private readonly h: JoinsHost) {
    this.lobby = h.ctx.claimLobby()
    this.lobby.onReceive((from, payload) => this.onLobby(from, payload))
  }

  get busy(): boolean {
    return this.moving || this.move !== undefined
  }

  close(): void {
    this.closed = true
  }

  // ---- the lobby ---------------------------------------------------------------------------

  private onLobby(from: NodeId, payload: Uint8Array): void {
    if (this.closed) return
    const { ctx } = this.h
    let frame: ReturnType<typeof decodeLobby>
    try {
      frame = decodeLobby(payload)
    } catch (error) {
      if (!DecodeError.isInstance(error)) throw error
      ctx.counters.inc('joinDroppedMalformed')
      return
    }
    if (frame === undefined) return
    if (frame.kind === JOIN) this.asks(from, frame.configuration)
    else if (frame.kind === WELCOME) this.welcomed(frame.configuration, frame.members)
    else if (frame.kind === REFUSED) {
      ctx.counters.inc('joinRefusedHere')
      if (!this.refusalLogged)
        ctx.log.warn('a member refused to take this one in', { from, reason: frame.reason })
      this.refusalLogged = true
    }
  }

  /** `from` asks to be taken in; it is in `configuration` of this group (or none). */
  private asks(from: NodeId, configuration: number | undefined): void {
    const { ctx, membership, order, psync, options } = this.h
    const own = ctx.group.configuration
    ctx.counters.inc('joinAsked')
    if (this.moving) return
    const view = membership.view()
    const inView = view.members.includes(from)
    const behind = configuration === undefined || configuration < own
    if (inView && behind && this.spokeHere(from)) {
      // It asks as a host without this configuration (or from an earlier one), yet it has
      // sent messages in this conversation: it lost its disk (wiped, replaced) and with it its
      // own chain here. Opening the configuration again it would start that chain afresh,
      // reusing its message ids — the others would take its new messages for the old ones —
      // and, with no checkpoint of its own, could even count as active with an empty state.
      // Its old incarnation is gone for good, and it is silent here: Failure Detection will
      // have the view exclude it; it then joins like a new member (a join request below, once
      // it asks again) and fetches the state in the next configuration. Asked twice (a JOIN
      // of a member that since joined could come late once), it is suspected at once.
      ctx.counters.inc('joinLostState')
      const now = ctx.clock.now()
      const seen = this.afresh.get(from)
      if (seen === undefined || now - seen.last > 10 * options.joinRetryMs) {
        this.afresh.set(from, { first: now, last: now, suspectedAt: undefined })
        return
      }
      seen.last = now
      if (
        (seen.suspectedAt !== undefined && now - seen.suspectedAt < 5 * options.joinRetryMs) ||
        now - seen.first < options.joinRetryMs / 2 ||
        membership.state() !== 'primary' ||
        this.h.state() !== 'active'
      )
        return
      seen.suspectedAt = now
      ctx.log.info('a member asks to join afresh: its state here is lost; suspecting it', {
        joiner: from,
      })
      try {
        membership.suspect(from)
      } catch (error) {
        ctx.log.debug('suspicion not reported', { joiner: from, error: String(error) })
      }
      return
    }
    if (inView && behind) {
      // A member of this configuration's view that is not in it yet: it opens it and fetches
      // the state. (One the view has excluded meanwhile needs a join like anyone else.)
      this.lobby.send(from, encodeWelcome(own, ctx.group.members))
      ctx.counters.inc('joinWelcomed')
      return
    }
    // Ahead of us (we are the one left behind), or in our view already (recovering by itself).
    if (configuration !== undefined && configuration > own) return
    if (inView) return
    if (order.holdAfter === undefined) {
      this.lobby.send(
        from,
        encodeRefused(
          `group ${ctx.group.port}: its Order (${order.semantics}) has no holdAfter, so it cannot take joins`,
        ),
      )
      ctx.counters.inc('joinRefused')
      return
    }
    if (membership.state() !== 'primary' || this.h.state() !== 'active') return // it asks again
    let admitted = false
    try {
      admitted = options.admit(from) === true
    } catch (error) {
      ctx.log.error('recovery option admit threw', { joiner: from, error: String(error) })
    }
    if (!admitted) {
      ctx.counters.inc('joinNotAdmitted')
      return
    }
    const now = ctx.clock.now()
    const last = this.asked.get(from)
    if (last !== undefined && now - last < 5 * options.joinRetryMs) return
    this.asked.set(from, now)
    try {
      psync.send(encodeRequest({ joiner: from, members: [...view.members, from] }))
      ctx.counters.inc('joinRequested')
      ctx.log.info('join requested', { joiner: from, configuration: own + 1 })
    } catch (error) {
      this.asked.delete(from)
      ctx.log.debug('join request not sent', { joiner: from, error: String(error) })
    }
  }

  /**
   * `member` has sent a message in this conversation: one of its messages is in the graph or
   * pruned, or in the causal past of a message here.
   */
  private spokeHere(member: NodeId): boolean {
    const { psync } = this.h
    const first = messageId(member, 1)
    if (psync.get(first) !== undefined || psync.stable(first)) return true
    for (const leaf of psync.leaves())
      if (leaf.sender === member || psync.precedes(first, leaf.id)) return true
    return false
  }

  /** A member of a later configuration that has this one in it. */
  private welcomed(configuration: number, members: readonly NodeId[]): void {
    const { ctx } = this.h
    if (this.moving || configuration <= ctx.group.configuration || !members.includes(ctx.self))
      return
    const move = this.move
    if (
      move !== undefined &&
      configuration === ctx.group.configuration + 1 &&
      move.members.join('\u0000') === [...members].sort().join('\u0000')
    ) {
      // The others moved before this member saw wave d stable; its state at d is the one
      // they carried (the wave is complete here and the Order held after it): carry it too.
      ctx.counters.inc('joinMovedUnstable')
      this.go(move)
      return
    }
    this.moving = true
    ctx.counters.inc('joinMovedBehind')
    ctx.log.info('the group moved on without this member; following it', { configuration })
    ctx.reconfigure({ members, configuration }).catch((error: unknown) => {
      this.moving = false
      ctx.counters.inc('joinMoveFailures')
      ctx.log.error('could not move into the next configuration', { error: String(error) })
    })
  }

  /** Every `joinRetryMs` (the session's timer): a member left behind asks to be taken in. */
  tick(): void {
    if (this.closed || this.moving) return
    const { ctx, membership, options } = this.h
    const state = membership.state()
    const recovery = this.h.state()
    const now = ctx.clock.now()
    // Held for a join request's wave — not complete here yet, or complete but not stable —
    // while the others may have moved already: the messages this member lacks can be lost
    // with nobody left in the old conversation to repair them, so ask. A member of the next
    // configuration answers WELCOME, and this one moves: with the state it holds if it has
    // the end of the wave, else without it (and fetches it there).
    const waiting = this.barrier !== undefined && now - this.heldSince >= options.joinRetryMs
    const leftOut =
      (state === 'excluded' && options.rejoin) ||
      state === 'minority' ||
      recovery === 'recovering' ||
      recovery === 'transferring' ||
      waiting
    if (!leftOut) return
    if (now - this.lastAsk < options.joinRetryMs) return
    this.lastAsk = now
    const ask = encodeJoin(ctx.group.configuration)
    for (const member of ctx.group.members) {
      if (member === ctx.self) continue
      try {
        this.lobby.send(member, ask.slice())
      } catch {
        // not a peer of the transport: nobody to ask there
      }
    }
    ctx.counters.inc('joinAsks')
  }

  // ---- requests in the conversation --------------------------------------------------------

  /** Every message Psync delivers (its log's replay included). */
  onDeliver(m: PsyncMessage): void {
    if (this.closed) return
    const { ctx, order } = this.h
    let request: JoinRequest | undefined
    try {
      request = decodeRequest(m.payload)
    } catch (error) {
      if (!DecodeError.isInstance(error)) throw error
      ctx.counters.inc('joinDroppedMalformed')
      return
    }
    if (request === undefined || order.holdAfter === undefined) return
    // A wave the Order has passed (a checkpoint covers it) completed without a move.
    if (m.depth < order.position().wave - 1) return
    let list = this.byWave.get(m.depth)
    if (list === undefined) this.byWave.set(m.depth, (list = []))
    list.push({ id: m.id, sender: m.sender, seq: m.seq, request })
    ctx.counters.inc('joinRequestsSeen')
    if (this.barrier === undefined || m.depth < this.barrier) this.hold(m.depth)
  }

  private hold(wave: number | undefined): void {
    if (this.barrier === undefined && wave !== undefined) this.heldSince = this.h.ctx.clock.now()
    this.barrier = wave
    this.h.order.holdAfter?.(wave)
  }

  /**
   * A complete wave: true when the group is moving (or about to), so no checkpoint is taken.
   */
  onWave(wave: number, messages: readonly PsyncMessage[]): boolean {
    if (this.closed) return true
    const list = this.byWave.get(wave)
    if (list === undefined) return this.busy
    this.byWave.delete(wave)
    if (this.busy) return true
    const inWave = new Set(messages.map((m) => m.id))
    const requests = list.filter((r) => inWave.has(r.id))
    if (requests.length === 0) {
      // Their senders were excluded below them: void, in no wave. Hold at the next one, if any.
      const next = [...this.byWave.keys()]
      this.hold(next.length === 0 ? undefined : Math.min(...next))
      return false
    }
    requests.sort((a, b) =>
      a.sender !== b.sender ? (a.sender < b.sender ? -1 : 1) : a.seq - b.seq,
    )
    const first = requests[0]!
    const members = [
      ...new Set([...first.request.members, ...requests.map((r) => r.request.joiner)]),
    ].sort()
    const before = new Set(this.h.ctx.group.members)
    this.move = {
      wave,
      members,
      joined: members.filter((m) => !before.has(m)),
      decidedBy: first.sender,
      unstable: new Set(messages.filter((m) => !this.h.psync.stable(m.id)).map((m) => m.id)),
    }
    this.h.ctx.counters.inc('joinWaves')
    this.settle()
    return true
  }

  /** Psync's stability grew: the move may go now. */
  settle(): void {
    const move = this.move
    if (move === undefined || this.moving || this.closed) return
    for (const id of move.unstable) if (this.h.psync.stable(id)) move.unstable.delete(id)
    if (move.unstable.size > 0) return
    this.go(move)
  }

  private go(move: Move): void {
    const { ctx, order, membership, options } = this.h
    if (!move.members.includes(ctx.self)) {
      // The list leaves this member out (its view excluded it): it stays, and asks again.
      ctx.counters.inc('joinLeftOut')
      ctx.log.warn('the next configuration leaves this member out', { members: move.members })
      this.move = undefined
      return
    }
    this.moving = true
    // A last word in this conversation: it tells the others this member has all of wave d,
    // so their wait for its stability ends too.
    try {
      this.h.psync.send(Uint8Array.of(RECOVERY_CHANNEL.id))
    } catch {
      // closing or not ready: the others follow by the lobby
    }
    const configuration = ctx.group.configuration + 1
    const next = {
      configuration,
      members: move.members,
      joined: move.joined,
      decidedBy: move.decidedBy,
    }
    let seed: StorageOp[] = []
    const state = this.h.state()
    if (
      (state === 'active' || state === 'recovering') &&
      membership.state() !== 'excluded' &&
      order.atWaveBoundary() &&
      order.position().wave === move.wave + 1
    ) {
      const states = ctx.checkpoints.carry(next)
      const record = encodeCheckpoint({ generation: 1, wave: 0, states }, options.crc32)
      const { manifest, parts } = manifestOf(1, 0, record, options.partBytes, options.crc32)
      seed = [
        ...partOps(1, parts),
        { type: 'put', key: keyOf(1), value: encodeManifest(manifest) },
        { type: 'put', key: HEAD_KEY, value: headValue(1) },
      ]
      ctx.counters.inc('joinCarried')
    } else ctx.counters.inc('joinUnseeded')
    ctx.log.info('moving into the next configuration', {
      wave: move.wave,
      configuration,
      members: move.members,
      joined: move.joined,
      carried: seed.length > 0,
    })
    ctx.reconfigure({ members: move.members, configuration, seed }).catch((error: unknown) => {
      ctx.counters.inc('joinMoveFailures')
      ctx.log.error('could not move into the next configuration', { error: String(error) })
    })
  }
}
