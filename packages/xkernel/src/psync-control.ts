/**
 * Psync's control interface as the protocols above it see it (Divider, Order, Failure
 * Detection, Membership, Recovery). It lives here, not in `@consul/psync`, so those
 * protocols depend on the framework only and any conforming implementation can replace
 * Psync.
 *
 * Psync keeps the *context graph* of a conversation: each message is sent in the context of
 * the messages its sender had sent or received (its `deps`, the sender's leaves at the
 * time), so the graph is the causal order. Delivery is causal and atomic; `stable`,
 * `precedes`, waves and membership-list operations are O(1) or O(members).
 */
import { capability } from './capability.js'
import type { NodeId } from './transport.js'

/** `sender:seq`, unique in a conversation. */
export type MessageId = string

export function messageId(sender: NodeId, seq: number): MessageId {
  return `${sender}:${seq}`
}

/** Splits an id at its last colon; `undefined` when it is not `sender:seq`. */
export function parseMessageId(id: MessageId): { sender: NodeId; seq: number } | undefined {
  const at = id.lastIndexOf(':')
  if (at <= 0) return undefined
  const seq = Number(id.slice(at + 1))
  if (!Number.isSafeInteger(seq) || seq < 1) return undefined
  return { sender: id.slice(0, at), seq }
}

export interface PsyncMessage {
  readonly id: MessageId
  readonly sender: NodeId
  /** Per-sender sequence number, from 1, increasing (gaps are allowed). */
  readonly seq: number
  /** Depth in the context graph: 0 without deps, else 1 + the deepest dep. Its wave. */
  readonly depth: number
  /** Direct predecessors: the sender's leaves when it sent the message. */
  readonly deps: readonly MessageId[]
  /** The upper layer's bytes (empty for a bare acknowledgement). */
  readonly payload: Uint8Array
  /** True when delivered again from the local log after a restart. */
  readonly restored: boolean
}

/**
 * What became of a frame heard from a member (`PsyncControl.onHeard`): `message` — a new
 * message, accepted; `duplicate` — one already here (or already held or parked); `held` — a
 * message waiting for a missing predecessor; `parked` — a message of a member on hold
 * pending a decision; `refused` — a message dropped (void, masked out, absurd); `request`,
 * `restart`, `leaves`, `ack` — Psync's own control frames; `excluded` — a member's word that
 * the group excluded this one (`onExcluded`); `direct` — a point-to-point datagram for a
 * protocol above (`sendDirect`); `malformed` — a datagram the transport
 * authenticated but Psync could not decode.
 */
export type HeardKind =
  | 'message'
  | 'duplicate'
  | 'held'
  | 'parked'
  | 'refused'
  | 'request'
  | 'restart'
  | 'leaves'
  | 'ack'
  | 'excluded'
  | 'direct'
  | 'malformed'

/** Evidence of life: one frame heard from `member` (Failure Detection's input). */
export interface HeardFrom {
  /** Who sent the datagram (not necessarily the message's sender: retransmissions). */
  readonly member: NodeId
  readonly kind: HeardKind
  /** For DATA frames, the message's id (its sender may be a third member). */
  readonly message: MessageId | undefined
  /** The highest seq of `member`'s own messages known here when it was heard. */
  readonly lastSeq: number
  /** The framework clock's time of the hearing. */
  readonly at: number
}

export interface PsyncControl {
  readonly self: NodeId
  /**
   * Sends `payload` to the conversation in the context of the current leaves. The message is
   * delivered locally at once; it goes on the wire once it is durable in the local log (a
   * restarted member must never forget a message it sent), which `onDurable` reports.
   *
   * Throws `PsyncError('NOT_READY')` in one rare window: after a restart whose log lost some of
   * this member's own messages (a corrupted record), until they are fetched back from peers —
   * a new message must build on every earlier own message, and must never reuse an id.
   */
  send(payload: Uint8Array): PsyncMessage
  /** Calls `handler` for every message in causal order (own ones included). */
  onDeliver(handler: (message: PsyncMessage) => void): () => void
  /**
   * Pull-style delivery, for a conversation opened with `delivery: 'iterator'`; messages
   * are buffered until taken. Throws `PsyncError('WRONG_DELIVERY_MODE')` otherwise.
   */
  messages(): AsyncIterableIterator<PsyncMessage>
  /** Calls `handler` with each wave's messages once the wave is complete, in wave order. */
  onWave(handler: (wave: number, messages: readonly PsyncMessage[]) => void): () => void
  /** The message, if it is in the (unpruned) graph. */
  get(id: MessageId): PsyncMessage | undefined
  /** `a` is in the causal past of `b` (both known, or `a` pruned). */
  precedes(a: MessageId, b: MessageId): boolean
  /**
   * Every member of the agreed list other than its sender has sent a message with it in its
   * past (so each of them holds it durably: a member logs what it received before anything it
   * sends after it). An own message counts only once it is durable and on the wire.
   */
  stable(id: MessageId): boolean
  /**
   * Calls `handler(sender, seq)` whenever the stable prefix of `sender`'s messages grows: every
   * message of `sender` with a sequence number ≤ `seq` is now stable. What the `'safe'`
   * delivery level of an Order waits for.
   */
  onStable(handler: (sender: NodeId, seq: number) => void): () => void
  /**
   * Own message `id` is durable in the local log (and so on the wire, or about to be resent):
   * a crash can no longer take it away. False for other members' messages.
   */
  durable(id: MessageId): boolean
  /**
   * Calls `handler(seq)` whenever own messages become durable: every own message with a
   * sequence number ≤ `seq` is now in the local log and on the wire. An Order may count an own
   * message toward any decision that others rely on (stability, a clock horizon, an early
   * delivery) only once it is durable: before that, a crash takes it away.
   */
  onDurable(handler: (seq: number) => void): () => void
  /** Messages with no successor yet. */
  leaves(): readonly PsyncMessage[]
  depth(id: MessageId): number | undefined
  /** The messages of wave `depth` known so far (all of them once the wave is complete). */
  wave(depth: number): readonly PsyncMessage[]
  /** Every member of the agreed list has sent a message of depth ≥ `depth`. */
  waveComplete(depth: number): boolean
  /** The agreed membership list: members neither masked out nor excluded. */
  members(): readonly NodeId[]
  /**
   * The highest seq of this member's own messages that `member` has shown it holds — a message
   * of it with them in its causal past, or an ACK — 0 before any; for this member itself, the
   * highest seq on the wire. What Failure Detection reads to tell a member that speaks but no
   * longer hears us (a one-way partition). Throws `NOT_A_MEMBER` for a name outside the list.
   */
  acknowledgedBy(member: NodeId): number
  /** Calls `handler` after every change of `members()` (mask, unmask, exclusion). */
  onMembersChanged(handler: (members: readonly NodeId[]) => void): () => void
  /**
   * Calls `handler` for every frame heard from a member — new messages, duplicates, held and
   * parked ones, control frames, even undecodable ones the transport authenticated: what
   * Failure Detection takes as evidence of life. Runs synchronously on the receive path:
   * keep it cheap. A frame from a non-member never reaches Psync.
   */
  onHeard(handler: (heard: HeardFrom) => void): () => void
  /**
   * Calls `handler` when a member tells this one that it excluded it (`exclude` with `cut`):
   * a member that has excluded another answers whatever it still hears from it — a message
   * above the cut, a request, a restart — with such a notice (at most one per
   * `restartRetryMs`). An excluded member that was cut off learns its exclusion this way even
   * when the decision's messages are pruned everywhere. Membership is what listens.
   */
  onExcluded(handler: (notice: { readonly by: NodeId; readonly cut: number }) => void): () => void
  /**
   * Sends `payload` to one member **outside the conversation**: not in the graph, not logged,
   * not ordered, not retransmitted — an ordinary datagram of the group's network (the
   * transport authenticates it and splits it into fragments when it is large), which may be
   * lost, duplicated or reordered. For bulk point-to-point traffic the protocols above run
   * their own flow control over (Recovery's state transfer). Throws `INVALID_ARGUMENT` for a
   * payload that is not a `Uint8Array` or exceeds `maxPayloadBytes`, `NOT_A_MEMBER` for a name
   * outside the member list, `CLOSED` after the conversation closed; sending to this member
   * itself is a no-op.
   */
  sendDirect(to: NodeId, payload: Uint8Array): void
  /**
   * Calls `handler(from, payload)` for every direct datagram from another member (`payload`
   * is a view valid during the call only: copy what you keep). Returns an unsubscribe
   * function; a non-function throws `INVALID_ARGUMENT`.
   */
  onDirect(handler: (from: NodeId, payload: Uint8Array) => void): () => void
  /**
   * Holds `member`'s later messages pending a decision (Membership deciding whether to
   * exclude it): messages of `member` that arrive from now on are parked — neither inserted
   * nor delivered, so they enter no wave — until `release(member)` (they are received after
   * all, in seq order) or `exclude(member, cut)` (those up to the cut are received, the rest
   * dropped). Messages of other members that depend on a parked one wait for it as for any
   * missing predecessor. Returns the highest seq of `member` inserted or pruned here (a
   * natural cut to propose). Parked messages are bounded by `maxHeld` (beyond it they are
   * dropped, counted `droppedParkedOverflow`, and come again by repair after the release).
   * Throws `INVALID_ARGUMENT` for this member itself, `NOT_A_MEMBER` for a name outside the
   * list; a no-op (returning the same seq) for a member already on hold or excluded.
   */
  hold(member: NodeId): number
  /** Ends `hold(member)` (no-op when it is not on hold). */
  release(member: NodeId): void
  /** `member` is on hold. */
  onHold(member: NodeId): boolean
  /**
   * Stops counting `member` for stability and wave completion, and drops its new messages
   * (and those parked by `hold`; the hold ends).
   */
  maskOut(member: NodeId): void
  /**
   * Undoes `maskOut`. Throws `INVALID_ARGUMENT` for a member excluded with a cut: it rejoins
   * through Recovery as a new incarnation (its own chain above the cut is void everywhere).
   */
  maskIn(member: NodeId): void
  /**
   * Excludes `member` with a cut: its messages with `seq ≤ cutSeq` count, everywhere — a wave
   * waits for those not yet here — and later ones are void for good (held ones dropped, new
   * ones refused, ones already here removed, never delivered again). Agreed changes only
   * (Membership), at the same logical point everywhere. The protocol that decided it
   * re-applies it after a restart — while the log is replayed, on delivering the message that
   * decided it (the same logical point), or before the conversation starts; Psync also records
   * it in its log and, when it was decided below the prune floor (its deciding messages may be
   * pruned), re-applies it itself before rebuilding the graph (for a restart that finds neither
   * the deciding messages nor the decider's checkpoint), so the same exclusion applied again
   * is a no-op (another cut for the same member throws `INVALID_ARGUMENT`). Ends a
   * `hold` on `member`: its parked messages up to the cut are received, the rest dropped.
   * Throws `PsyncError('CUT_CONFLICT')` (and changes nothing) when a message above the cut is
   * already part of a completed wave here: the decision contradicts what this member has
   * delivered in order.
   */
  exclude(member: NodeId, cutSeq: number): void
  /**
   * Messages below this depth may be pruned once stable: what checkpointing declares once a
   * checkpoint at wave `depth` is durable. Nothing at or above the declared floor is pruned,
   * whatever `retainWaves` says. Only ever raised (a lower value is ignored).
   */
  setPruneFloor(depth: number): void
  /**
   * The lowest wave Psync can still report complete: messages of a lower depth may have been
   * pruned (0 while nothing was). After a restart Psync reports waves from here on, so an
   * Order restored from a checkpoint below it — or from none — cannot replay what it missed
   * and must stop (the Order specification's never-skip-a-wave rule).
   */
  waveFloor(): number
}

export const PSYNC = capability<'psync', PsyncControl>('psync')
