/**
 * This member's own chain of messages: the next sequence number, how far the chain is on the
 * wire (durable), and — after a restart that found a hole — which own messages must be
 * fetched back from peers before anything new may be sent.
 *
 * Invariants: `transmittedSeq ≤ mySeq`; an id that went on the wire is never reused (after a
 * restart `mySeq` starts at the durable high-water mark or above); `missing` is empty except
 * after a restart that lost own records; while the log replays, `missing` is not empty or
 * `uncertain` is set, `notReady()` names why nothing may be sent.
 */
import type { Logger } from '@consul/xkernel'
import { PsyncError } from './errors.js'

export class OwnChain {
  /** Highest own seq taken. */
  mySeq = 0
  /** Highest own seq already on the wire (durable). */
  transmittedSeq = 0
  /** When the latest own message went on the wire. */
  transmittedAt = Number.NEGATIVE_INFINITY
  /**
   * Own seqs at most `mySeq` that are neither in the graph nor pruned (lost from the log by
   * corruption, or held for a lost predecessor): until they are back, nothing new is sent.
   */
  readonly missing = new Set<number>()
  /** The restored high-water mark could not be trusted: wait for a peer's word on own seqs. */
  uncertain = false
  /**
   * The log is being replayed into the graph: a send from a delivery callback of the replay
   * would take the next seq but depend only on what the replay has inserted so far — an own
   * message older than its own predecessor, in a wave the others completed long ago.
   */
  replaying = false

  constructor(
    private readonly port: string,
    private readonly log: Logger,
  ) {}

  /** Why `send` must wait, or undefined when it may go ahead. */
  notReady(): PsyncError | undefined {
    if (this.replaying) {
      return new PsyncError(
        'NOT_READY',
        `conversation ${this.port} is replaying its log after a restart: a message delivered by the replay is answered already (it was before the crash), nothing new is sent until the replay ends`,
      )
    }
    if (this.uncertain) {
      return new PsyncError(
        'NOT_READY',
        `conversation ${this.port} restarted without a readable high-water mark: it sends again once a peer has said how far its messages went`,
      )
    }
    if (this.missing.size > 0) {
      return new PsyncError(
        'NOT_READY',
        `conversation ${this.port} restarted with ${this.missing.size} own message(s) missing from its log (e.g. seq ${this.missing.values().next().value}): it sends again once peers have returned them`,
      )
    }
    return undefined
  }

  /** Own message `seq` went on the wire at `now`. */
  transmitted(seq: number, now: number): void {
    if (seq > this.transmittedSeq) this.transmittedSeq = seq
    this.transmittedAt = now
  }

  /** A peer holds own messages up to `seq` that the log lost: their ids are taken. */
  learnedFromPeer(seq: number): void {
    for (let s = this.mySeq + 1; s <= seq; s++) this.missing.add(s)
    this.mySeq = seq
    this.transmittedSeq = Math.max(this.transmittedSeq, seq)
  }

  /** Own message `seq` is back in the graph. */
  recovered(seq: number): void {
    if (this.missing.delete(seq) && this.missing.size === 0)
      this.log.info('own history complete again; sending resumes', { seq: this.mySeq })
  }
}
