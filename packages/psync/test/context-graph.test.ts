import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { Ref } from '../src/codec.js'
import { ContextGraph, type GraphNode } from '../src/context-graph.js'

const N = 4

/** Builds a random history the way Psync does: each message depends on its sender's previous one and on some others'. */
const historyArb = fc.array(
  fc.record({
    sender: fc.integer({ min: 0, max: N - 1 }),
    picks: fc.array(fc.nat(), { minLength: N, maxLength: N }),
  }),
  { minLength: 1, maxLength: 60 },
)

function build(steps: { sender: number; picks: number[] }[]) {
  const graph = new ContextGraph(N)
  const nodes: GraphNode[] = []
  const seqs = new Array<number>(N).fill(0)
  for (const { sender, picks } of steps) {
    const deps: Ref[] = []
    for (let member = 0; member < N; member++) {
      const last = seqs[member]!
      if (member === sender) {
        if (last > 0) deps.push({ member, seq: last })
      } else if (last > 0 && picks[member]! % 3 !== 0) {
        deps.push({ member, seq: 1 + (picks[member]! % last) })
      }
    }
    nodes.push(graph.insert(sender, ++seqs[sender]!, deps, new Uint8Array()))
  }
  return { graph, nodes }
}

function reachable(from: GraphNode, graph: ContextGraph): Set<GraphNode> {
  const seen = new Set<GraphNode>()
  const stack = [...from.deps]
  while (stack.length > 0) {
    const ref = stack.pop()!
    const node = graph.get(ref.member, ref.seq)!
    if (seen.has(node)) continue
    seen.add(node)
    stack.push(...node.deps)
  }
  return seen
}

describe('ContextGraph', () => {
  it('precedes() by vector equals reachability; depth is 1 + deepest dep; leaves have no successor', () => {
    fc.assert(
      fc.property(historyArb, (steps) => {
        const { graph, nodes } = build(steps)
        const past = new Map(nodes.map((n) => [n, reachable(n, graph)]))
        for (const b of nodes) {
          for (const a of nodes) {
            expect(graph.precedes({ member: a.sender, seq: a.seq }, b)).toBe(past.get(b)!.has(a))
          }
          const expectedDepth =
            b.deps.length === 0
              ? 0
              : 1 + Math.max(...b.deps.map((d) => graph.get(d.member, d.seq)!.depth))
          expect(b.depth).toBe(expectedDepth)
        }
        const withSuccessor = new Set<GraphNode>()
        for (const n of nodes)
          for (const d of n.deps) withSuccessor.add(graph.get(d.member, d.seq)!)
        expect(new Set(graph.leaves())).toEqual(new Set(nodes.filter((n) => !withSuccessor.has(n))))
        // Every message is in exactly one wave, the one of its depth.
        for (const n of nodes) expect(graph.wave(n.depth)).toContain(n)
        expect(graph.size).toBe(nodes.length)
      }),
      { numRuns: 300 },
    )
  })

  it('reports missing deps and treats pruned ones as present', () => {
    const graph = new ContextGraph(2)
    graph.insert(0, 1, [], new Uint8Array())
    expect(
      graph.missing([
        { member: 0, seq: 1 },
        { member: 1, seq: 1 },
      ]),
    ).toEqual([{ member: 1, seq: 1 }])
    graph.prunedSeq[1] = 3
    expect(graph.missing([{ member: 1, seq: 2 }])).toEqual([])
    expect(graph.has(1, 3)).toBe(true)
    expect(graph.has(1, 4)).toBe(false)
  })

  it('a message whose successor was pruned is no leaf when rebuilt (after a restart)', () => {
    // Live: a:1 ← b:1 ← c:1; b's prefix is pruned, a:1 kept (c:1 depends on it directly).
    const graph = new ContextGraph(3)
    graph.insert(0, 1, [], new Uint8Array())
    graph.insert(1, 1, [{ member: 0, seq: 1 }], new Uint8Array())
    graph.insert(
      2,
      1,
      [
        { member: 1, seq: 1 },
        { member: 0, seq: 1 },
      ],
      new Uint8Array(),
    )
    graph.insert(
      1,
      2,
      [
        { member: 1, seq: 1 },
        { member: 2, seq: 1 },
      ],
      new Uint8Array(),
    )
    const pruned = graph.prune(10, (n) => n.sender === 1 && n.seq === 1)
    expect(pruned.map((n) => `${n.sender}:${n.seq}`)).toEqual(['1:1'])
    // Rebuilt from the watermarks and the log in a new graph, as restore does.
    const rebuilt = new ContextGraph(3)
    for (let p = 0; p < 3; p++) {
      rebuilt.prunedSeq[p] = graph.prunedSeq[p]!
      rebuilt.prunedVc[p] = [...graph.prunedVc[p]!]
      rebuilt.prunedDepth[p] = graph.prunedDepth[p]!
    }
    rebuilt.insert(0, 1, [], new Uint8Array())
    expect(rebuilt.leafRefs()).toEqual([]) // b:1, pruned, builds on it
    rebuilt.insert(
      2,
      1,
      [
        { member: 1, seq: 1 },
        { member: 0, seq: 1 },
      ],
      new Uint8Array(),
    )
    rebuilt.insert(
      1,
      2,
      [
        { member: 1, seq: 1 },
        { member: 2, seq: 1 },
      ],
      new Uint8Array(),
    )
    expect(rebuilt.leafRefs()).toEqual(graph.leafRefs())
    expect(rebuilt.leafRefs()).toEqual([{ member: 1, seq: 2 }])
  })

  it('prunes a per-member prefix of stable messages below the floor, never the last', () => {
    const { graph, nodes } = build(
      Array.from({ length: 20 }, (_, i) => ({ sender: i % 2, picks: [1, 1, 1, 1] })),
    )
    const before = graph.size
    const pruned = graph.prune(5, () => true)
    expect(pruned.length).toBeGreaterThan(0)
    for (const node of pruned) {
      expect(node.depth).toBeLessThan(5)
      expect(graph.get(node.sender, node.seq)).toBeUndefined()
      expect(graph.has(node.sender, node.seq)).toBe(true)
    }
    expect(graph.size).toBe(before - pruned.length)
    // The per-member watermark is the highest pruned seq.
    for (const member of [0, 1]) {
      const mine = pruned.filter((n) => n.sender === member).map((n) => n.seq)
      expect(graph.prunedSeq[member]).toBe(Math.max(0, ...mine))
    }
    // precedes still answers for a pruned message against a live one.
    const lastNode = nodes[nodes.length - 1]!
    expect(graph.precedes({ member: pruned[0]!.sender, seq: pruned[0]!.seq }, lastNode)).toBe(true)
    expect(graph.prune(100, () => false)).toEqual([])
  })
})
