/**
 * Repair: asking for what is missing (the wants `retransmit.ts` tracks, on a timer) and
 * answering peers' requests. An answer carries the requested messages and everything of
 * their causal past the requester lacks (above its `have` vector), oldest depth first, so a
 * member that fell behind catches up in one round trip instead of walking the chain back one
 * message at a time — at most `maxRetransmitBatch` messages and `repairBurstBytes` of them;
 * the rest is asked for again.
 *
 * Answers are paid from the requester's budget (`peer-budget.ts`): one small request must not
 * make a member send without bound. What the budget cannot pay now is deferred, not refused —
 * sent as the bucket refills — so repair under heavy loss still converges (a refused answer
 * would only come back as the same request after a backoff). A newer request from the same
 * peer supersedes what was deferred for it: it says what the peer lacks now.
 *
 * Invariants: own messages not yet durable are never sent (they follow once on the wire); a
 * want is dropped once nothing needs it (its held messages expired, it became void, it
 * arrived); the timer is armed for the earliest due want; at most one answer is deferred per
 * peer (at most `maxRetransmitBatch` messages), with a timer armed for when its next message
 * fits the budget.
 */
import { MessageBuffer, type Timer } from '@consul/xkernel'
import { encodeRequest, type Ref, wireMessage } from './codec.js'
import type { GraphNode } from './context-graph.js'
import type { Conversation } from './conversation.js'
import { PeerBudget } from './peer-budget.js'

/** Refs per REQUEST frame. */
const REFS_PER_REQUEST = 512

export class Repair {
  private timer: Timer | undefined
  private timerAt = Number.POSITIVE_INFINITY
  /** The part of each peer's last answer the budget could not pay yet, oldest depth first. */
  private readonly deferred: (GraphNode[] | undefined)[]
  private readonly deferredTimers: (Timer | undefined)[]

  constructor(
    private readonly c: Conversation,
    /** What answers (and re-sends) to each peer may cost. */
    private readonly budget: PeerBudget,
    /** The want is still needed for a reason outside the wants themselves (own, parked …). */
    private readonly skip: (ref: Ref) => boolean = () => false,
  ) {
    this.deferred = new Array<GraphNode[] | undefined>(c.members.size).fill(undefined)
    this.deferredTimers = new Array<Timer | undefined>(c.members.size).fill(undefined)
  }

  /** (Re)arms the request timer for the earliest due want. */
  arm(): void {
    const due = this.c.wants.nextDueAt()
    if (due === undefined) return
    if (this.timer !== undefined) {
      if (this.timerAt <= due) return
      this.timer.cancel()
    }
    this.timerAt = due
    this.timer = this.c.ctx.clock.setTimer(due - this.c.ctx.clock.now(), () => {
      this.timer = undefined
      this.ask()
    })
  }

  /** A peer that shows it has what `refs` need (it re-sent a held message): ask it now. */
  prompt(refs: readonly Ref[], peer: number): void {
    const due = this.c.wants.prompt(refs, peer, this.c.ctx.clock.now())
    if (due !== undefined && due < this.timerAt) this.arm()
  }

  /** `q` was heard after a silence: every want's backoff starts over. */
  peerHeard(q: number): void {
    if (this.c.wants.size === 0) return
    this.c.wants.peerHeard(q, this.c.ctx.clock.now())
    this.arm()
  }

  private ask(): void {
    const c = this.c
    // Stop asking for what no held message needs any more (expired, excluded).
    const wanted = new Set(c.held.wanted().map((r) => `${r.member}:${r.seq}`))
    c.wants.retain((r, kind) => {
      if (c.members.isLost(r.member, r.seq) || this.skip(r)) return false
      switch (kind) {
        case 'held':
          return wanted.has(`${r.member}:${r.seq}`)
        case 'own':
          return c.own.missing.has(r.seq)
        case 'cut':
        case 'named':
          return !c.graph.has(r.member, r.seq)
      }
    })
    const requests = c.wants.due(c.ctx.clock.now(), c.members.peers())
    for (const [target, refs] of requests) {
      for (let i = 0; i < refs.length; i += REFS_PER_REQUEST) {
        c.net.send(
          c.members.name(target),
          MessageBuffer.fromPayload(encodeRequest(refs.slice(i, i + REFS_PER_REQUEST), c.have())),
        )
      }
      c.counters.inc('requestsSent')
      c.counters.inc('requestedMessages', refs.length)
      c.ctx.events.emit('psync.retransmitting', {
        group: c.ctx.group.port,
        peer: c.members.name(target),
        direction: 'from',
        count: refs.length,
      })
    }
    this.arm()
  }

  /** Answers member `from`'s request for `refs`, given what it has (`have`). */
  answer(refs: readonly Ref[], have: readonly number[], from: number): void {
    const c = this.c
    const batch = requestAnswer(c, refs, have)
    if (this.budget.unlimited) {
      for (const node of batch) c.net.send(c.members.name(from), wireMessage(node))
      c.counters.inc('retransmitted', batch.length)
      return
    }
    // One request makes us send at most the burst (at least one message): the rest is asked
    // for again, once the requester has taken this in.
    let bytes = 0
    let cut = 0
    const wire = batch.map(wireMessage)
    while (cut < batch.length) {
      bytes += PeerBudget.cost(wire[cut]!.length)
      if (cut > 0 && bytes > c.options.repairBurstBytes) break
      cut++
    }
    if (cut < batch.length) c.counters.inc('retransmitCapped', batch.length - cut)
    const previous = this.deferred[from]
    if (previous !== undefined) c.counters.inc('retransmitSuperseded', previous.length)
    const { rest } = this.pay(from, batch.slice(0, cut), wire)
    if (rest.length > 0) c.counters.inc('retransmitThrottled', rest.length)
    this.defer(from, rest)
  }

  /**
   * Sends `nodes` to `q` (oldest first) while its budget pays; returns how many it sent and
   * what it could not pay. `wire`: their frames, when already encoded.
   */
  private pay(
    q: number,
    nodes: readonly GraphNode[],
    wire?: readonly MessageBuffer[],
  ): { sent: number; rest: GraphNode[] } {
    const c = this.c
    const now = c.ctx.clock.now()
    let sent = 0
    let rest: GraphNode[] = []
    for (let i = 0; i < nodes.length; i++) {
      const node = nodes[i]!
      // Pruned since it was deferred: stable, so the requester holds it.
      if (wire === undefined && c.graph.get(node.sender, node.seq) !== node) continue
      const msg = wire?.[i] ?? wireMessage(node)
      if (!this.budget.spend(q, PeerBudget.cost(msg.length), now)) {
        rest = nodes.slice(i)
        break
      }
      c.net.send(c.members.name(q), msg)
      sent++
    }
    c.counters.inc('retransmitted', sent)
    return { sent, rest }
  }

  /** Keeps `rest` for `q` and arms a timer for when its first message fits the budget. */
  private defer(q: number, rest: GraphNode[]): void {
    this.deferredTimers[q]?.cancel()
    this.deferredTimers[q] = undefined
    if (rest.length === 0 || this.c.closed) {
      this.deferred[q] = undefined
      return
    }
    this.deferred[q] = rest
    const c = this.c
    const wait = this.budget.waitMs(
      q,
      PeerBudget.cost(wireMessage(rest[0]!).length),
      c.ctx.clock.now(),
    )
    this.deferredTimers[q] = c.ctx.clock.setTimer(Math.max(1, Math.ceil(wait)), () => {
      this.deferredTimers[q] = undefined
      const queued = this.deferred[q]
      if (queued === undefined || c.closed) return
      const { sent, rest } = this.pay(q, queued)
      c.counters.inc('retransmitDeferred', sent)
      this.defer(q, rest)
    })
  }
}

/**
 * The messages that answer a request: each requested message here and its causal past above
 * `have`, oldest depth first, at most `maxRetransmitBatch`. Own messages count only up to
 * what is on the wire.
 */
export function requestAnswer(
  c: Conversation,
  refs: readonly Ref[],
  have: readonly number[],
): GraphNode[] {
  const n = c.members.size
  const self = c.members.self
  const upTo = new Array<number>(n).fill(0)
  for (const ref of refs) {
    const node = c.graph.get(ref.member, ref.seq)
    // Own messages not yet durable are not on the wire yet: they will follow.
    if (node === undefined || (ref.member === self && ref.seq > c.own.transmittedSeq)) {
      c.counters.inc('requestsUnanswerable')
      continue
    }
    for (let p = 0; p < n; p++) if (node.vc[p]! > upTo[p]!) upTo[p] = node.vc[p]!
  }
  upTo[self] = Math.min(upTo[self]!, c.own.transmittedSeq)
  const answer: GraphNode[] = []
  for (let p = 0; p < n; p++) {
    const from = Math.max(have[p]!, c.graph.prunedSeq[p]!)
    if (upTo[p]! > from) for (const node of c.graph.range(p, from, upTo[p]!)) answer.push(node)
  }
  answer.sort((a, b) => a.depth - b.depth)
  return answer.slice(0, c.options.maxRetransmitBatch)
}
