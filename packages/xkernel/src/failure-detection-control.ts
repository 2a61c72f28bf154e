/**
 * Failure Detection's control interface (`@consul/failure-detection` provides it), here so
 * that Membership and Recovery depend on the framework only. Alone it is the *weak*
 * membership service: each replica suspects and masks out on its own. With Membership above
 * it (the *strong* service), Membership takes the decisions (`delegate`) and Failure
 * Detection only reports.
 */
import { capability } from './capability.js'
import type { NodeId } from './transport.js'

/** Why a member is suspected: what a person debugging a view change needs to see. */
export interface SuspicionReason {
  /** How long nothing had been heard from it (ms, framework clock). */
  readonly silentForMs: number
  /** The timeout that silence exceeded, after every adaptation (ms). */
  readonly timeoutMs: number
  /** The highest seq of its own messages heard here. */
  readonly lastSeq: number
  /** How late this replica's own timers ran recently (ms): already added to the timeout. */
  readonly localLagMs: number
  /** What lengthened the timeout (`retransmitting`, `recovering`, `deciding`, `local-lag`). */
  readonly adaptations: readonly string[]
  /**
   * 0 for a silent member. Otherwise the member still speaks but has not acknowledged this
   * replica's messages for this long (ms) — a one-way partition: it does not hear us, so it
   * cannot take part (and its silence would never be noticed).
   */
  readonly unacknowledgedForMs: number
}

export interface Suspicion {
  readonly member: NodeId
  /** Framework-clock time of the suspicion. */
  readonly at: number
  readonly reason: SuspicionReason
}

export interface FailureDetectionControl {
  /** Members suspected here now. */
  suspected(): readonly NodeId[]
  /**
   * How close `member` is to being suspected: silence divided by its current timeout (≥ 1:
   * suspected). 0 for this member; throws `XKernelError('INVALID_ARGUMENT')` for a non-member.
   */
  suspicionLevel(member: NodeId): number
  /** `member`'s timeout now, after every adaptation, and what lengthened it. */
  timeoutOf(member: NodeId): { readonly timeoutMs: number; readonly adaptations: readonly string[] }
  /** Calls `handler` on every new suspicion, with its reason. */
  onSuspect(handler: (suspicion: Suspicion) => void): () => void
  /** Calls `handler` when a suspected member is heard from again. */
  onAlive(handler: (member: NodeId, at: number) => void): () => void
  /**
   * Hands the decisions to the caller (Membership): from now on a suspicion no longer masks
   * the member out locally, it is only reported. Called once, at open; idempotent.
   */
  delegate(): void
  /** The checkpoint position the next alive messages carry (Recovery's prune floor). */
  setCheckpointPosition(wave: number): void
  /** The latest checkpoint position each member's alive messages carried. */
  checkpointPositions(): Readonly<Record<NodeId, number>>
}

export const FAILURE_DETECTION = capability<'failure-detection', FailureDetectionControl>(
  'failure-detection',
)
