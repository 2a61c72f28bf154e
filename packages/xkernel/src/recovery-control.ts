/**
 * Recovery's control interface (`@consul/recovery` provides it), here so that applications
 * and other protocols depend on the framework only. Recovery takes the coordinated
 * checkpoint (every session's state and the wave, one storage batch), restores it after a
 * crash before anything starts, keeps the replica passive while Psync replays the rest of its
 * log, rejoins the view (`MembershipControl.up`), and declares Psync's prune floor — the
 * lowest checkpoint any member of the view may still need.
 */
import { capability } from './capability.js'
import type { NodeId } from './transport.js'

/**
 * `recovering`: replaying after a restart (clients refused); `transferring`: fetching a
 * checkpoint from a live member because no checkpoint of its own is usable and the log no
 * longer starts at wave 0 (clients refused; the group restarts from the fetched checkpoint
 * once it is durable); `failed`: it cannot rejoin.
 */
export type RecoveryState = 'recovering' | 'transferring' | 'active' | 'failed'

/** A state transfer under way (or finished) at this member. */
export interface TransferProgress {
  /** The member the parts come from now (it changes when a donor stops answering). */
  readonly donor: NodeId
  /** The donor's checkpoint: its wave and size. */
  readonly wave: number
  readonly bytes: number
  readonly parts: number
  /** Parts received, checked and written to storage so far (kept across a crash). */
  readonly partsReceived: number
  /** Done: the fetched checkpoint is durable here and the group must restart from it. */
  readonly complete: boolean
}

/** A durable coordinated checkpoint. */
export interface CheckpointInfo {
  /** This member's checkpoint count (the storage key sorts by it). */
  readonly generation: number
  /** The Order's wave at the boundary it was taken at. */
  readonly wave: number
  /** Size of the stored record. */
  readonly bytes: number
  /** The protocols whose session state it holds, bottom first. */
  readonly protocols: readonly string[]
}

export interface RecoveryControl {
  state(): RecoveryState
  /**
   * Resolves once this replica is active — at once after a fresh open; after a restart once
   * the log is replayed and every member of the view acknowledged its `up`. Rejects with the
   * reason (`XKernelError('RECOVERY_FAILED' | 'EXCLUDED' | 'GROUP_CLOSED')`) if it cannot be,
   * and with `XKernelError('RESTART_REQUIRED')` once a state transfer has made a fetched
   * checkpoint durable: restart the group (`group.restart()`, or `@consul/restart`'s
   * `recoverReady`, which does it) and it comes back from that checkpoint.
   */
  ready(): Promise<void>
  /** The state transfer of this incarnation, if one runs (or ran). */
  transfer(): TransferProgress | undefined
  /** Calls `handler` on every state change. */
  onStateChange(handler: (state: RecoveryState) => void): () => void
  /**
   * Takes a coordinated checkpoint at the next wave boundary where every session can give its
   * state, and resolves once it is durable. Rejects with `XKernelError('GROUP_CLOSED')` if the
   * group closes first.
   */
  checkpoint(): Promise<CheckpointInfo>
  /** The newest durable checkpoint, if any. */
  lastCheckpoint(): CheckpointInfo | undefined
  /**
   * What this incarnation restored: the checkpoint it started from (`undefined`: none — the
   * whole log is replayed) and how many newer records it skipped as unreadable.
   */
  restoredFrom():
    | { readonly generation: number; readonly wave: number; readonly skipped: number }
    | undefined
  /** The prune floor last declared to Psync (0: nothing may be pruned yet). */
  pruneFloor(): number
}

export const RECOVERY = capability<'recovery', RecoveryControl>('recovery')
