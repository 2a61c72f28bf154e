/**
 * The context graph: every message of the conversation with its direct predecessors, kept so
 * that the questions other protocols ask are O(1) or O(members), never graph walks.
 *
 * Each node carries a vector `vc`: `vc[p]` = the highest sequence number of member `p` in the
 * node's causal past (itself included). Because a member's own messages form a chain (each
 * is sent in the context of the previous), `a` precedes `b` ⇔ `b.vc[a.sender] ≥ a.seq` and
 * `a ≠ b`. `depth` = 0 without deps, else 1 + the deepest dep: a message's wave.
 *
 * Invariants: a node is inserted only after all its deps (causal order); leaves are exactly
 * the nodes no other node depends on; `last[p]` is member p's highest message, so
 * `last[p].vc` is what p had seen when it last spoke. Pruned messages (stable, below the
 * prune floor) leave only per-member watermarks: `prunedSeq[p]`, and for deps on them the
 * watermark's vector and depth (an upper bound, exact when the prefix is a chain prefix).
 */
import type { PsyncMessage } from '@consul/xkernel'
import type { Ref } from './codec.js'

export interface GraphNode {
  readonly sender: number
  readonly seq: number
  readonly deps: readonly Ref[]
  readonly depth: number
  readonly vc: readonly number[]
  readonly payload: Uint8Array
  /** Re-delivered from the local log after a restart. */
  readonly restored: boolean
  /** Written to the local log (or known to be there). */
  logged: boolean
  /** Its key in the log, once written. */
  logKey?: string
  /**
   * Its encoded DATA frame, when one is at hand (own and received messages: `payload` is a
   * view of this frame's tail), so the log and the wire reuse it instead of encoding again.
   */
  frame: Uint8Array | undefined
  /** The upper layer's view of it (`PsyncMessage`), once built. */
  view: PsyncMessage | undefined
}

export class ContextGraph {
  private readonly bySender: Map<number, GraphNode>[]
  /** Highest message of each member in the graph. */
  readonly last: (GraphNode | undefined)[]
  private readonly leafSet = new Set<GraphNode>()
  private readonly byDepth = new Map<number, GraphNode[]>()
  /** Messages of member p with seq ≤ prunedSeq[p] were pruned (they count as present). */
  readonly prunedSeq: number[]
  /** Vector and depth of each member's highest pruned message. */
  readonly prunedVc: number[][]
  readonly prunedDepth: number[]
  /**
   * Depth and vector of the pruned messages below a member's highest pruned one that a kept
   * (or held) message depends on: a dep on them must stay exact — after a restart too, so the
   * watermarks carry them. Recomputed at each prune (only what is still referenced stays).
   */
  boundary = new Map<string, { readonly depth: number; readonly vc: readonly number[] }>()
  private live = 0

  constructor(readonly memberCount: number) {
    this.bySender = Array.from({ length: memberCount }, () => new Map())
    this.last = Array.from({ length: memberCount }, () => undefined)
    this.prunedSeq = Array.from({ length: memberCount }, () => 0)
    this.prunedVc = Array.from({ length: memberCount }, () =>
      new Array<number>(memberCount).fill(0),
    )
    this.prunedDepth = Array.from({ length: memberCount }, () => -1)
  }

  /** Messages held in memory. */
  get size(): number {
    return this.live
  }

  get(member: number, seq: number): GraphNode | undefined {
    return this.bySender[member]?.get(seq)
  }

  isPruned(member: number, seq: number): boolean {
    return seq <= (this.prunedSeq[member] ?? 0)
  }

  /** In the graph or pruned: either way a dependency on it is satisfied. */
  has(member: number, seq: number): boolean {
    return this.isPruned(member, seq) || this.bySender[member]!.has(seq)
  }

  /** The deps of a would-be message that are neither present nor pruned. */
  missing(deps: readonly Ref[]): Ref[] {
    const out: Ref[] = []
    for (const dep of deps) if (!this.has(dep.member, dep.seq)) out.push(dep)
    return out
  }

  private vcOf(dep: Ref): readonly number[] {
    return (
      this.get(dep.member, dep.seq)?.vc ??
      this.boundary.get(`${dep.member}:${dep.seq}`)?.vc ??
      this.prunedVc[dep.member]!
    )
  }

  private depthOf(dep: Ref): number {
    return (
      this.get(dep.member, dep.seq)?.depth ??
      this.boundary.get(`${dep.member}:${dep.seq}`)?.depth ??
      this.prunedDepth[dep.member]!
    )
  }

  /** Inserts a message whose deps are all present or pruned. */
  insert(
    sender: number,
    seq: number,
    deps: readonly Ref[],
    payload: Uint8Array,
    restored = false,
    frame?: Uint8Array,
  ): GraphNode {
    const vc = new Array<number>(this.memberCount).fill(0)
    let depth = 0
    for (const dep of deps) {
      const dvc = this.vcOf(dep)
      for (let i = 0; i < vc.length; i++) if (dvc[i]! > vc[i]!) vc[i] = dvc[i]!
      const d = this.depthOf(dep) + 1
      if (d > depth) depth = d
    }
    vc[sender] = Math.max(vc[sender]!, seq)
    const node: GraphNode = {
      sender,
      seq,
      deps,
      depth,
      vc,
      payload,
      restored,
      logged: false,
      frame,
      view: undefined,
    }
    this.bySender[sender]!.set(seq, node)
    const last = this.last[sender]
    if (last === undefined || last.seq < seq) this.last[sender] = node
    for (const dep of deps) {
      const d = this.get(dep.member, dep.seq)
      if (d !== undefined) this.leafSet.delete(d)
    }
    // A late message can arrive after a successor of it was pruned; it is then no leaf.
    if (!this.hasSuccessor(node)) this.leafSet.add(node)
    let wave = this.byDepth.get(depth)
    if (wave === undefined) {
      wave = []
      this.byDepth.set(depth, wave)
    }
    wave.push(node)
    this.live++
    return node
  }

  /**
   * Some message builds on `node`: a member's last message, or its highest pruned one (a kept
   * message can have a pruned successor — pruning keeps per-member prefixes — and when it is
   * rebuilt from the log after a restart it must not become a leaf again: the next own message
   * would depend on two messages of one member).
   */
  private hasSuccessor(node: GraphNode): boolean {
    for (const other of this.last) {
      if (other !== undefined && other !== node && other.vc[node.sender]! >= node.seq) return true
    }
    for (let p = 0; p < this.memberCount; p++)
      if (p !== node.sender && this.prunedVc[p]![node.sender]! >= node.seq) return true
    return false
  }

  /** `a` is in the causal past of `b` (a ≠ b). */
  precedes(a: Ref, b: GraphNode): boolean {
    if (a.member === b.sender && a.seq === b.seq) return false
    return b.vc[a.member]! >= a.seq
  }

  leaves(): GraphNode[] {
    return [...this.leafSet]
  }

  /** The leaves as references, in member order (the deps of the next own message). */
  leafRefs(): Ref[] {
    return this.leaves()
      .map((n) => ({ member: n.sender, seq: n.seq }))
      .sort((x, y) => x.member - y.member)
  }

  wave(depth: number): readonly GraphNode[] {
    return this.byDepth.get(depth) ?? []
  }

  /** Messages of `member` with seq in (from, to], in seq order. */
  *range(member: number, from: number, to: number): Iterable<GraphNode> {
    const chain = this.bySender[member]!
    if (to - from <= chain.size) {
      for (let seq = from + 1; seq <= to; seq++) {
        const node = chain.get(seq)
        if (node !== undefined) yield node
      }
    } else {
      yield* [...chain.values()]
        .filter((n) => n.seq > from && n.seq <= to)
        .sort((x, y) => x.seq - y.seq)
    }
  }

  /**
   * Removes one member's messages above `cutSeq` (exclusion); they must have no successors
   * but each other. Their predecessors that no remaining message builds on become leaves
   * again, so the next own message depends on them.
   */
  discardAbove(member: number, cutSeq: number): GraphNode[] {
    const removed = [...this.bySender[member]!.values()].filter((n) => n.seq > cutSeq)
    for (const node of removed) this.remove(node)
    let last: GraphNode | undefined
    for (const node of this.bySender[member]!.values())
      if (last === undefined || node.seq > last.seq) last = node
    this.last[member] = last
    for (const node of removed) {
      for (const dep of node.deps) {
        const d = this.get(dep.member, dep.seq)
        if (d !== undefined && !this.hasSuccessor(d)) this.leafSet.add(d)
      }
    }
    return removed
  }

  private remove(node: GraphNode): void {
    this.bySender[node.sender]!.delete(node.seq)
    this.leafSet.delete(node)
    const wave = this.byDepth.get(node.depth)
    if (wave !== undefined) {
      const i = wave.indexOf(node)
      if (i >= 0) wave.splice(i, 1)
      if (wave.length === 0) this.byDepth.delete(node.depth)
    }
    this.live--
  }

  /**
   * Prunes the messages of depth < `floor` that `isStable` accepts, oldest first per member,
   * stopping at a member's first message that stays (pruning keeps a per-member prefix).
   * Returns what was pruned.
   *
   * Invariant kept: every message left (and every dep in `alsoKept`, the held messages' deps)
   * depends only on messages left or on its member's *highest* pruned message, whose vector
   * and depth the watermarks keep — so a message inserted after pruning (rebuilt from the log
   * after a restart, or released from the held set) gets the exact depth and vector it had
   * everywhere else. A member's prefix is cut back to the dep a remaining message has on it.
   */
  prune(
    floor: number,
    isStable: (node: GraphNode) => boolean,
    alsoKept: Iterable<readonly Ref[]> = [],
  ): GraphNode[] {
    const chains: GraphNode[][] = []
    const upTo = new Array<number>(this.memberCount).fill(0)
    for (let member = 0; member < this.memberCount; member++) {
      const chain = [...this.bySender[member]!.values()].sort((x, y) => x.seq - y.seq)
      chains.push(chain)
      upTo[member] = this.prunedSeq[member]!
      for (const node of chain) {
        if (node.depth >= floor || !isStable(node) || node === this.last[member]) break
        upTo[member] = node.seq
      }
    }
    // A kept (or held) message that depends on a pruned message below its member's highest
    // pruned one keeps that dep's depth and vector in the boundary. (Cutting the prefixes back
    // instead, until every such dep is a highest one, walks back to the start of the log under
    // sustained concurrent traffic: nothing would ever be pruned.)
    const boundary = new Map<string, { depth: number; vc: readonly number[] }>()
    const note = (deps: readonly Ref[]) => {
      for (const dep of deps) {
        if (dep.seq > upTo[dep.member]! || dep.seq === upTo[dep.member]) continue
        const key = `${dep.member}:${dep.seq}`
        if (boundary.has(key)) continue
        // Live, kept exact by an earlier prune, or the member's highest pruned one so far (whose
        // depth and vector the watermark holds only until a higher one is pruned now).
        const known =
          this.get(dep.member, dep.seq) ??
          this.boundary.get(key) ??
          (dep.seq === this.prunedSeq[dep.member]
            ? { depth: this.prunedDepth[dep.member]!, vc: this.prunedVc[dep.member]! }
            : undefined)
        if (known !== undefined) boundary.set(key, { depth: known.depth, vc: known.vc })
      }
    }
    for (let member = 0; member < this.memberCount; member++)
      for (const node of chains[member]!) if (node.seq > upTo[member]!) note(node.deps)
    for (const deps of alsoKept) note(deps)
    const pruned: GraphNode[] = []
    for (let member = 0; member < this.memberCount; member++) {
      for (const node of chains[member]!) {
        if (node.seq > upTo[member]!) break
        this.remove(node)
        this.prunedSeq[member] = node.seq
        this.prunedVc[member] = [...node.vc]
        this.prunedDepth[member] = node.depth
        pruned.push(node)
      }
    }
    this.boundary = boundary
    return pruned
  }
}
