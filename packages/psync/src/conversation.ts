/**
 * What the parts of a Psync session share: the graph, the member list, the own chain, the
 * log, the network, and the few session operations the parts call back into. Each part
 * (receive, repair, resend, restart, delivery, …) takes this, not the whole session, so what
 * one part may touch is visible in one place.
 */
import type { Counters, GroupNetwork, SessionContext } from '@consul/xkernel'
import type { DataFrame } from './codec.js'
import type { ContextGraph, GraphNode } from './context-graph.js'
import type { HeldMessages } from './held.js'
import type { MessageLog } from './log.js'
import type { MemberList } from './members.js'
import type { ResolvedOptions } from './options.js'
import type { OwnChain } from './own-chain.js'
import type { MissingTracker } from './retransmit.js'

/**
 * A DATA frame to insert: with its encoded bytes when at hand (`GraphNode.frame`), and its
 * log key when it came from the log.
 */
export type KeptFrame = DataFrame & { readonly frame?: Uint8Array; readonly logKey?: string }

export interface Conversation {
  readonly ctx: SessionContext<Record<never, never>>
  readonly options: ResolvedOptions
  readonly members: MemberList
  readonly graph: ContextGraph
  /** Messages waiting for missing predecessors. */
  readonly held: HeldMessages
  /** What is missing, and whom to ask (`retransmit.ts`). */
  readonly wants: MissingTracker
  readonly log: MessageLog
  readonly net: GroupNetwork
  readonly counters: Counters
  readonly own: OwnChain
  readonly closed: boolean
  /**
   * Inserts `first` (its deps are all present) and everything it releases from `waiting`, in
   * causal order: logs what is not logged yet, delivers, and advances stability and waves.
   * The one path for received, fetched and restored messages.
   */
  accept(first: KeptFrame, restored: boolean, waiting?: HeldMessages): void
  /** Re-evaluates stability and waves (after anything that may change them). */
  advance(): void
  /** The highest seq of member `p` known here (in the graph, or pruned). */
  knownSeq(p: number): number
  /** have[p]: every message of member p up to this seq is here (or pruned). */
  have(): number[]
  /** Member q has every own message up to `seq`. */
  acknowledged(q: number, seq: number): void
}

/** Member q's last message: what q had seen when it last spoke (own: the last durable one). */
export function lastOf(c: Conversation, q: number): GraphNode | undefined {
  return q === c.members.self ? c.graph.get(q, c.own.transmittedSeq) : c.graph.last[q]
}
