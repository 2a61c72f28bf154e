/**
 * Membership's control interface (`@consul/membership` provides it), here so that Recovery,
 * the Orders and applications depend on the framework only. With Failure Detection below it,
 * it is the *strong* membership service: the replicas agree on a sequence of views, each
 * decided by a majority of the previous one (primary partition), and every member of a view
 * installs it at the same logical point of the conversation.
 *
 * Capability `MEMBERSHIP` ('membership'): a stack that requires it (Recovery) does not
 * compile without `@consul/membership` — the weak configuration cannot be given Recovery.
 */
import { capability } from './capability.js'
import type { SuspicionReason } from './failure-detection-control.js'
import type { NodeId } from './transport.js'

/** One agreed view of the group. */
export interface View {
  /**
   * 0 for the configuration's member list (the group's as opened, or as a join made it); +1
   * at every agreed change within the configuration. A view is named by
   * `(configuration, id)`.
   */
  readonly id: number
  /** The group's configuration (`Group.configuration`): one more at each join. */
  readonly configuration: number
  /** Its members, in the group's canonical (sorted) order. */
  readonly members: readonly NodeId[]
}

/**
 * Why a view changed. `failure`: members suspected and excluded by an agreed decision (some
 * may have asked to leave too: `leaves`). `leave`: every member that left asked to
 * (`MembershipControl.leave`) — at the members that stay, and at the one that left.
 * `excluded`: this member learned that the primary excluded *it* without its asking (it stops
 * ordering; it comes back only through Recovery, as a join). `join`: view 0 of a new
 * configuration the group moved into because members joined (`joined`; Recovery's joins) —
 * its `cuts` and `suspicions` are empty, `decidedBy` is the member whose request moved it.
 */
export interface ViewChangeReason {
  readonly kind: 'failure' | 'leave' | 'excluded' | 'join'
  /** Who proposed the decision (the coordinator of the round that was chosen). */
  readonly decidedBy: NodeId
  /**
   * Each excluded member's cut: the highest seq of its messages that counts everywhere (its
   * later messages are void).
   */
  readonly cuts: Readonly<Record<NodeId, number>>
  /** What this replica's Failure Detection said about each excluded member, if it suspected it. */
  readonly suspicions: Readonly<Record<NodeId, SuspicionReason>>
  /** The members of `left` that asked to leave (`leave()`), in canonical order. */
  readonly leaves: readonly NodeId[]
}

export interface ViewChange {
  readonly view: View
  readonly joined: readonly NodeId[]
  readonly left: readonly NodeId[]
  readonly reason: ViewChangeReason
}

/**
 * Whether this replica may order: `primary` — it belongs to the current primary view and can
 * reach a majority of it; `minority` — it suspects so many members of its view that no
 * decision could include it (a partition's minority side, or the survivor of too many
 * failures): its Order refuses new submits until it hears a majority again; `excluded` — the
 * primary excluded it, for good in this configuration (Recovery brings it back in the next one:
 * a join); `leaving` —
 * it asked to leave (`leave()`) and waits for the decision: its Order refuses new submits (the
 * ones sent before still count), and once the view without it is installed it is `excluded`.
 */
export type PrimaryState = 'primary' | 'minority' | 'leaving' | 'excluded'

export interface MembershipControl {
  /** The view installed here. */
  view(): View
  /** `primary`, `minority` or `excluded` (see `PrimaryState`). */
  state(): PrimaryState
  /** Calls `handler` after every view change installed here, in view order. */
  onViewChange(handler: (change: ViewChange) => void): () => void
  /** Calls `handler` on every change of `state()`. */
  onStateChange(handler: (state: PrimaryState, view: View) => void): () => void
  /**
   * Reports a suspicion of `member` (Failure Detection calls it through `onSuspect`; an
   * application or an operator may too): Membership proposes its exclusion unless another
   * member has newer evidence that it is alive. Throws `XKernelError('INVALID_ARGUMENT')` for
   * this member itself or a name outside the current view.
   */
  suspect(member: NodeId): void
  /** The decision round open here, if any: the members it would exclude. */
  deciding(): readonly NodeId[]
  /**
   * Announces that this member is up again — Recovery calls it after a restart, once the
   * replay is done (DESIGN: "then it sends `up(self)` and becomes active when acknowledged by
   * every member"). Sends `up(self)`; every other member of the view answers `ackUp`, and
   * treats the `up` as proof that this member is alive (a pending `down` of it is dropped, as
   * by a `nackDown`). Resolves with the view once every other member of the current view has
   * acknowledged it (after a view change, in the new view: the `up` is sent again). Rejects
   * with `XKernelError('EXCLUDED')` if the primary excluded this member (it comes back only as
   * a new incarnation), `XKernelError('GROUP_CLOSED')` if the session closes first. Calls while
   * one is pending share its promise.
   */
  up(): Promise<View>
  /**
   * Leaves the group gracefully: sends `leave(self)`; every other member answers it as an
   * acknowledged report (nothing can refute a member's own word that it leaves), and it is
   * decided as an exclusion whose cut is the last message of this member the deciding members
   * hold — no suspicion, no timeout. From the call on `state()` is `'leaving'` (the Order
   * refuses new submits; those sent before are ordered as usual). Resolves with the view
   * change that removes this member (`reason.kind: 'leave'`, this member in `left` and
   * `reason.leaves`), after which `state()` is `'excluded'`. Calls while one is pending share
   * its promise. Rejects with `XKernelError('INVALID_ARGUMENT')` when the other members of the
   * view would not be a majority of it (a view of 2 cannot shrink to 1 — the primary-partition
   * rule; close the group instead), `'EXCLUDED'` when this member is excluded already,
   * `'GROUP_CLOSED'` if the session closes first.
   */
  leave(): Promise<ViewChange>
}

export const MEMBERSHIP = capability<'membership', MembershipControl>('membership')
