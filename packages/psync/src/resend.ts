/**
 * Re-sending own messages a peer has not acknowledged. A peer acknowledges own message `s`
 * by sending anything with it in its past (or a bare ACK). One that has not acknowledged the
 * latest own message gets again what it is known to lack — the own messages above what it
 * acknowledged, the newest `RESEND_BATCH` of them — with per-peer backoff (`backoff.ts`);
 * the peer then asks for anything older it still lacks, in one request. A peer heard again
 * after a silence starts its backoff over. Re-sends are paid from the peer's budget
 * (`peer-budget.ts`, shared with retransmission answers): a peer that keeps going silent and
 * speaking again — each time resetting the backoff — cannot make us re-send without bound.
 * What the budget cannot pay is left out, the oldest first (counted `resendThrottled`): the
 * newest tells the peer what to ask for, and the next round carries the rest.
 *
 * Invariants: nothing is re-sent that was not on the wire already; `ackedAt[q]` only grows;
 * the timer runs only while some counted peer lags.
 */
import type { MessageBuffer, Timer } from '@consul/xkernel'
import { retryDelay } from './backoff.js'
import { wireMessage } from './codec.js'
import type { Conversation } from './conversation.js'
import { PeerBudget } from './peer-budget.js'

/** Most own messages re-sent at once to a peer that lacks them (it asks for the rest). */
export const RESEND_BATCH = 32

export class OwnResender {
  /** Highest own seq each member acknowledged. */
  readonly ackedAt: number[]
  /** Re-sends to each member since it last acknowledged (or was heard after a silence). */
  private readonly attempts: number[]
  private readonly resentAt: number[]
  private timer: Timer | undefined

  constructor(
    private readonly c: Conversation,
    private readonly budget: PeerBudget,
  ) {
    const n = c.members.size
    this.ackedAt = new Array<number>(n).fill(0)
    this.attempts = new Array<number>(n).fill(0)
    this.resentAt = new Array<number>(n).fill(Number.NEGATIVE_INFINITY)
  }

  /** Member q has every own message up to `seq`: stop re-sending those to it. */
  acknowledged(q: number, seq: number): void {
    if (seq > this.ackedAt[q]!) {
      this.ackedAt[q] = seq
      this.attempts[q] = 0
    }
  }

  /** `q` was heard after a silence: its backoff starts over. */
  peerHeard(q: number): void {
    if (this.attempts[q]! === 0) return
    this.attempts[q] = 0
    this.resentAt[q] = Number.NEGATIVE_INFINITY
    this.arm()
  }

  arm(): void {
    if (this.timer !== undefined || this.c.closed) return
    this.timer = this.c.ctx.clock.setTimer(this.c.options.resendAfterMs, () => {
      this.timer = undefined
      this.run()
    })
  }

  private run(): void {
    const c = this.c
    const last = c.graph.get(c.members.self, c.own.transmittedSeq)
    if (last === undefined) return
    const now = c.ctx.clock.now()
    // Under steady traffic the latest message is always fresh: give it a chance first.
    if (now - c.own.transmittedAt < c.options.resendAfterMs) {
      this.arm()
      return
    }
    let pending = false
    for (const q of c.members.peers()) {
      const acked = this.ackedAt[q]!
      if (acked >= last.seq) continue
      pending = true
      const wait = retryDelay(this.attempts[q]!, c.options.resendAfterMs, c.options.maxBackoffMs)
      if (now - this.resentAt[q]! < wait) continue
      this.resentAt[q] = now
      this.attempts[q]!++
      const from = Math.max(acked, last.seq - RESEND_BATCH, c.graph.prunedSeq[c.members.self]!)
      const wire: MessageBuffer[] = []
      for (const node of c.graph.range(c.members.self, from, last.seq)) wire.push(wireMessage(node))
      // Paid newest first, sent oldest first.
      let first = wire.length
      while (first > 0 && this.budget.spend(q, PeerBudget.cost(wire[first - 1]!.length), now))
        first--
      if (first > 0) c.counters.inc('resendThrottled', first)
      const count = wire.length - first
      for (let i = first; i < wire.length; i++) c.net.send(c.members.name(q), wire[i]!)
      c.counters.inc('resent', count)
      c.ctx.events.emit('psync.retransmitting', {
        group: c.ctx.group.port,
        peer: c.members.name(q),
        direction: 'to',
        count,
      })
    }
    if (pending) this.arm()
  }
}
