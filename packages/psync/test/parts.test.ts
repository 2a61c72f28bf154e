/**
 * The parts of a Psync session, each on its own: the member list, stability, waves and the
 * prune floor, the own chain, parked messages, and the answer to a request.
 */
import { describe, expect, it } from 'vitest'
import { ContextGraph } from '../src/context-graph.js'
import type { Conversation } from '../src/conversation.js'
import { MemberList } from '../src/members.js'
import { OwnChain } from '../src/own-chain.js'
import { ParkedMessages } from '../src/parked.js'
import { requestAnswer } from '../src/repair.js'
import { Stability } from '../src/stability.js'
import { pruneFloor, WaveTracker, waveComplete } from '../src/waves.js'

const quiet = { debug() {}, info() {}, warn() {}, error() {} } as never

describe('MemberList', () => {
  it('gives every member the same index whatever order the list was written in', () => {
    const a = new MemberList(['n2', 'n1', 'n3'], 'n2', 'g')
    const b = new MemberList(['n3', 'n2', 'n1'], 'n3', 'g')
    expect(a.names).toEqual(['n1', 'n2', 'n3'])
    expect(b.names).toEqual(a.names)
    expect(a.self).toBe(1)
    expect(b.indexOf('n2')).toBe(1)
  })

  it('refuses a self outside the list and names outside it', () => {
    expect(() => new MemberList(['n1', 'n2'], 'x', 'g')).toThrow(/not a member of g/)
    expect(() => new MemberList(['n1', 'n2'], 'n1', 'g').member('zz')).toThrow(/zz is not a member/)
  })

  it('masks and unmasks; an exclusion is for good and voids what lies above the cut', () => {
    const m = new MemberList(['n1', 'n2', 'n3'], 'n1', 'g')
    expect(() => m.maskOut(0)).toThrow(/cannot mask itself/)
    expect(m.maskOut(1)).toBe(true)
    expect(m.maskOut(1)).toBe(false)
    expect(m.isMasked(1)).toBe(true)
    expect(m.counted()).toEqual(['n1', 'n3'])
    expect(m.peers()).toEqual([2])
    expect(m.maskIn(1)).toBe(true)
    expect(m.counted()).toEqual(['n1', 'n2', 'n3'])
    m.exclude(2, 5)
    expect(m.isVoid(2, 5)).toBe(false)
    expect(m.isVoid(2, 6)).toBe(true)
    expect(m.isMasked(2)).toBe(false)
    expect(() => m.maskIn(2)).toThrow(/rejoins through Recovery/)
    expect(() => m.exclude(2, 9)).toThrow(/already excluded \(cut 5\)/)
    expect(() => m.exclude(0, 1)).toThrow(/cannot exclude itself/)
    expect(() => m.exclude(1, -1)).toThrow(/cut must be a sequence number/)
    expect(() => m.exclude(1, 1.5)).toThrow(/cut must be a sequence number/)
  })
})

/** What `Stability.advance` reports, as a list. */
function advances(s: Stability, inputs: Parameters<Stability['advance']>[0], ownCap: number) {
  const out: { member: number; before: number; seq: number }[] = []
  s.advance(inputs, ownCap, (member, before, seq) => void out.push({ member, before, seq }))
  return out
}

describe('Stability', () => {
  it("is the lowest of what every other counted member knows of a sender's chain", () => {
    const s = new Stability(3, 0)
    const knows = [
      [9, 4, 2],
      [3, 9, 1],
      [5, 2, 9],
    ]
    const inputs = {
      active: [true, true, true],
      knows: (q: number, p: number) => knows[q]![p]!,
      knownSeq: () => 9,
    }
    expect(advances(s, inputs, 10)).toEqual([
      { member: 0, before: 0, seq: 3 },
      { member: 1, before: 0, seq: 2 },
      { member: 2, before: 0, seq: 1 },
    ])
    expect(s.isStable(0, 3)).toBe(true)
    expect(s.isStable(0, 4)).toBe(false)
    // Nothing grew: nothing reported; a masked member no longer holds a prefix back.
    expect(advances(s, inputs, 10)).toEqual([])
    expect(advances(s, { ...inputs, active: [true, true, false] }, 10)).toEqual([
      { member: 1, before: 2, seq: 4 },
    ])
  })

  it('counts own messages only up to what is durable, and never goes back', () => {
    const s = new Stability(2, 0)
    const inputs = { active: [true, true], knows: () => 7, knownSeq: () => 7 }
    expect(advances(s, inputs, 4)).toEqual([
      { member: 0, before: 0, seq: 4 },
      { member: 1, before: 0, seq: 7 },
    ])
    expect(advances(s, { ...inputs, knows: () => 2 }, 9)).toEqual([])
    expect(s.stableSeq).toEqual([4, 7])
  })
})

describe('waves and the prune floor', () => {
  const inputs = (depths: number[], extra: Partial<Parameters<typeof waveComplete>[1]> = {}) => ({
    memberCount: depths.length,
    active: depths.map(() => true),
    cut: depths.map(() => undefined),
    memberDepth: (p: number) => depths[p]!,
    has: () => true,
    ...extra,
  })

  it('a wave is complete once every counted member passed it', () => {
    expect(waveComplete(2, inputs([2, 3, 5]))).toBe(true)
    expect(waveComplete(3, inputs([2, 3, 5]))).toBe(false)
    expect(waveComplete(3, inputs([2, 3, 5], { active: [false, true, true] }))).toBe(true)
    // Nobody counts: no wave is ever complete.
    expect(waveComplete(0, inputs([9], { active: [false] }))).toBe(false)
  })

  it("waits for an excluded member's messages up to its cut", () => {
    const excluded = { active: [true, false], cut: [undefined, 4] }
    expect(waveComplete(1, inputs([5, 0], { ...excluded, has: () => false }))).toBe(false)
    expect(waveComplete(1, inputs([5, 0], { ...excluded, has: () => true }))).toBe(true)
  })

  it('completes waves in order, none skipped, and resumes above the pruned prefix', () => {
    const t = new WaveTracker(undefined)
    const seen: number[] = []
    t.advance(inputs([2, 4]), (w) => seen.push(w))
    expect(seen).toEqual([0, 1, 2])
    expect(t.next).toBe(3)
    const r = new WaveTracker(4)
    r.resume([3, 7, -1], 5, true)
    expect(r.next).toBe(8)
    expect(r.declaredFloor).toBe(5)
    expect(r.prunedFloor).toBe(5)
  })

  it('the floor: declared, lowered by retainWaves, never above the next wave', () => {
    expect(pruneFloor(10, undefined, undefined)).toBe(0)
    expect(pruneFloor(10, 4, undefined)).toBe(6)
    expect(pruneFloor(10, undefined, 8)).toBe(8)
    expect(pruneFloor(10, 4, 8)).toBe(6)
    expect(pruneFloor(10, 4, 3)).toBe(3)
    expect(pruneFloor(5, undefined, 9)).toBe(5)
    const t = new WaveTracker(undefined)
    t.declare(5)
    t.declare(2)
    expect(t.declaredFloor).toBe(5)
  })
})

describe('OwnChain', () => {
  it('is ready unless own history is uncertain or has a hole', () => {
    const own = new OwnChain('g', quiet)
    expect(own.notReady()).toBeUndefined()
    own.mySeq = 3
    own.learnedFromPeer(6)
    expect(own.mySeq).toBe(6)
    expect(own.transmittedSeq).toBe(6)
    expect([...own.missing]).toEqual([4, 5, 6])
    expect(own.notReady()?.code).toBe('NOT_READY')
    expect(own.notReady()?.message).toMatch(/3 own message\(s\) missing .*seq 4/)
    for (const s of [4, 5, 6]) own.recovered(s)
    expect(own.notReady()).toBeUndefined()
    own.uncertain = true
    expect(own.notReady()?.message).toMatch(/without a readable high-water mark/)
  })
})

describe('ParkedMessages', () => {
  const frame = (sender: number, seq: number) =>
    ({ kind: 0, sender, seq, deps: [], payload: new Uint8Array(0) }) as never

  it('parks only for members on hold, bounded, and releases in seq order', () => {
    const p = new ParkedMessages(2)
    expect(p.park(frame(1, 1))).toBe(false)
    p.hold(1)
    expect(p.park(frame(1, 3))).toBe(true)
    expect(p.park(frame(1, 3))).toBe(true)
    expect(p.park(frame(1, 2))).toBe(true)
    expect(p.size).toBe(2)
    expect(p.park(frame(1, 4))).toBe(false)
    expect(p.has(1, 2)).toBe(true)
    expect(p.release(1).map((f: { seq: number }) => f.seq)).toEqual([2, 3])
    expect(p.isOnHold(1)).toBe(false)
    expect(p.size).toBe(0)
    expect(p.release(1)).toEqual([])
  })
})

describe('requestAnswer', () => {
  it('answers with the requested messages and their past above what the requester has, oldest first, own ones only once on the wire', () => {
    const graph = new ContextGraph(2)
    const payload = new Uint8Array(0)
    graph.insert(0, 1, [], payload, false)
    graph.insert(1, 1, [{ member: 0, seq: 1 }], payload, false)
    graph.insert(0, 2, [{ member: 1, seq: 1 }], payload, false)
    graph.insert(1, 2, [{ member: 0, seq: 2 }], payload, false)
    const counts = new Map<string, number>()
    const c = {
      graph,
      members: new MemberList(['a', 'b'], 'a', 'g'),
      own: { transmittedSeq: 1 },
      options: { maxRetransmitBatch: 10 },
      counters: { inc: (k: string) => counts.set(k, (counts.get(k) ?? 0) + 1) },
    } as unknown as Conversation
    const ids = (refs: { member: number; seq: number }[], have: number[]) =>
      requestAnswer(c, refs, have).map((n) => `${n.sender}:${n.seq}`)
    expect(ids([{ member: 1, seq: 2 }], [0, 0])).toEqual(['0:1', '1:1', '1:2'])
    expect(ids([{ member: 1, seq: 1 }], [1, 0])).toEqual(['1:1'])
    // Own message 2 is not durable yet: unanswerable, it follows once on the wire.
    expect(ids([{ member: 0, seq: 2 }], [0, 1])).toEqual([])
    expect(counts.get('requestsUnanswerable')).toBe(1)
    c.own.transmittedSeq = 2
    expect(ids([{ member: 1, seq: 2 }], [0, 0])).toEqual(['0:1', '1:1', '0:2', '1:2'])
    expect(ids([{ member: 1, seq: 2 }], [2, 1])).toEqual(['1:2'])
  })
})
