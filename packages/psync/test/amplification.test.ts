/**
 * No amplification (issue #16): what a peer's frames make a member send — retransmission
 * answers, re-sends, restart answers — is bounded per peer. n1 and n2 run Psync; n3 and n4
 * are raw endpoints that forge nothing (the transport authenticates them) but send what a
 * buggy or restarted-far-behind member could: floods of REQUEST and RESTART. What n1 sends
 * them is counted at their endpoints.
 */
import { dist, Simulation } from '@consul/sim'
import { groupTag, MessageBuffer, type NodeId, PSYNC, stack } from '@consul/xkernel'
import { describe, expect, it } from 'vitest'
import {
  decodeFrame,
  encodeRequest,
  encodeRestart,
  KIND_DATA,
  KIND_LEAVES,
  type Ref,
} from '../src/codec.js'
import { type PsyncOptions, psync } from '../src/index.js'
import { DATAGRAM_OVERHEAD, PeerBudget } from '../src/peer-budget.js'
import { measureRepair } from './fixtures/repair.js'

const NODES = ['n1', 'n2', 'n3', 'n4']
const TAG_BYTES = 4

interface Tap {
  /** DATA frames n1 sent to this endpoint, and their cost as the budget charges it. */
  data: number
  cost: number
  /** n1's seqs among them. */
  seqs: Set<number>
  leaves: number[]
}

async function floodSetup(options: PsyncOptions, messages = 200) {
  const sim = new Simulation({
    seed: 3,
    nodes: NODES.length,
    // Re-sends to n3 and n4 (which never acknowledge) are paid from the same budget; kept out
    // of the way so each test sees the budget its requests use.
    stack: stack().use(psync({ logEveryMs: 1, resendAfterMs: 10_000, ...options })),
    network: { delay: dist.constant(1) },
  })
  await sim.start()
  await sim.openAll({ port: 'g', members: NODES }, ['n1', 'n2'])
  const tag = groupTag('g', NODES)
  const taps = new Map<NodeId, Tap>()
  const raw = new Map<NodeId, ReturnType<typeof sim.network.endpoint>>()
  for (const node of ['n3', 'n4']) {
    const tap: Tap = { data: 0, cost: 0, seqs: new Set(), leaves: [] }
    taps.set(node, tap)
    const endpoint = sim.network.endpoint(node)
    raw.set(node, endpoint)
    endpoint.onReceive((from, bytes) => {
      if (from !== 'n1') return
      const kind = bytes[TAG_BYTES]
      if (kind === KIND_DATA) {
        tap.data++
        tap.cost += PeerBudget.cost(bytes.length - TAG_BYTES)
        const frame = decodeFrame(MessageBuffer.fromPayload(bytes.slice(TAG_BYTES)), NODES.length)
        if (frame.kind === KIND_DATA && frame.sender === 0) tap.seqs.add(frame.seq)
      } else if (kind === KIND_LEAVES) tap.leaves.push(sim.now)
    })
  }
  const send = (from: NodeId, frame: Uint8Array) =>
    raw.get(from)!.send('n1', MessageBuffer.fromPayload(frame).pushU32(tag).view())
  const conv = sim.host('n1').group('g')!.get(PSYNC)
  sim.every(1, messages, () => void conv.send(new Uint8Array(40)))
  await sim.run({ until: messages + 100 })
  for (const tap of taps.values()) {
    tap.data = 0
    tap.cost = 0
    tap.seqs.clear()
  }
  const stats = () => sim.host('n1').stats().psync!
  // n1's messages, asked for by a member that has none of them.
  const all: Ref[] = Array.from({ length: stats().transmitted! }, (_, i) => ({
    member: 0,
    seq: i + 1,
  }))
  return { sim, taps, send, all, stats }
}

describe('PeerBudget', () => {
  it('pays up to the burst at once, then at the rate; a message larger than the burst waits for a full bucket', () => {
    const b = new PeerBudget(2, 1_000, 500)
    expect(b.spend(0, 300, 0)).toBe(true)
    expect(b.spend(0, 300, 0)).toBe(false)
    expect(b.spend(1, 500, 0)).toBe(true) // its own bucket
    expect(b.waitMs(0, 300, 0)).toBe(100)
    expect(b.spend(0, 300, 99)).toBe(false)
    expect(b.spend(0, 300, 100)).toBe(true)
    // 2,000 bytes: only once the bucket is full, then it owes the rest.
    expect(b.waitMs(0, 2_000, 100)).toBe(500)
    expect(b.spend(0, 2_000, 599)).toBe(false)
    expect(b.spend(0, 2_000, 600)).toBe(true)
    expect(b.waitMs(0, 1, 600)).toBe(1_501)
    expect(b.unlimited).toBe(false)
  })

  it('never pays more than burst + rate · t over t ms, whatever is asked', () => {
    const b = new PeerBudget(1, 2_000, 300)
    let paid = 0
    for (let t = 0; t <= 10_000; t++) if (b.spend(0, 1 + (t % 97), t)) paid += 1 + (t % 97)
    expect(paid).toBeLessThanOrEqual(300 + 2_000 * 10)
    expect(paid).toBeGreaterThan(2_000 * 9)
  })

  it('with an infinite rate or burst it is off', () => {
    for (const b of [
      new PeerBudget(1, Number.POSITIVE_INFINITY, 10),
      new PeerBudget(1, 10, Number.POSITIVE_INFINITY),
    ]) {
      expect(b.unlimited).toBe(true)
      for (let i = 0; i < 100; i++) expect(b.spend(0, 1e9, 0)).toBe(true)
      expect(b.waitMs(0, 1e9, 0)).toBe(0)
    }
  })
})

describe('a retransmission budget per peer', () => {
  it('a member flooded with requests by one peer sends it at most the budget — and the others their full answers', async () => {
    const rate = 20_000
    const burst = 5_000
    const { sim, taps, send, all, stats } = await floodSetup({
      repairBytesPerSecondPerPeer: rate,
      repairBurstBytes: burst,
    })
    const start = sim.now
    const before = stats()
    // n3 asks for all 200 messages every millisecond for a second: 1,000 requests, each of
    // which unthrottled made n1 send 200 messages (≈ 20 k frames, ≈ 2 MB).
    sim.every(1, start + 1_000, () => send('n3', encodeRequest(all.slice(-8), [0, 0, 0, 0])))
    // n4 asks once, mid-flood: its budget is its own, its answer (the burst's worth) at once.
    sim.at(start + 500, () => send('n4', encodeRequest(all.slice(-8), [0, 0, 0, 0])))
    await sim.run({ until: start + 505 })
    expect(taps.get('n4')!.data).toBeGreaterThanOrEqual(Math.floor(burst / PeerBudget.cost(60)))
    await sim.run({ until: start + 1_000 })
    const n3 = taps.get('n3')!
    const elapsed = sim.now - start
    expect(n3.cost).toBeLessThanOrEqual(burst + (rate * elapsed) / 1000)
    // Most of the budget was used (the answers were deferred, not refused).
    expect(n3.cost).toBeGreaterThan((rate * elapsed) / 1000 / 2)
    const st = stats()
    expect(st.retransmitThrottled! - (before.retransmitThrottled ?? 0)).toBeGreaterThan(1_000)
    expect(st.retransmitSuperseded ?? 0).toBeGreaterThan(1_000)
    expect(DATAGRAM_OVERHEAD).toBe(64)
  })

  it('an answer over budget is deferred and sent in full as the budget refills; one request gets at most the burst', async () => {
    const { sim, taps, send, all, stats } = await floodSetup({
      repairBytesPerSecondPerPeer: 10_000,
      repairBurstBytes: 12_000,
    })
    const n3 = taps.get('n3')!
    const start = sim.now
    // Everything n1 sent (≈ 110 bytes a message, ≈ 22 kB): capped at the burst, ≈ 107.
    sim.at(start + 1, () => send('n3', encodeRequest(all.slice(-1), [0, 0, 0, 0])))
    // n3 took those in and asks for the rest: the bucket is empty, so it is deferred.
    sim.at(start + 3, () => send('n3', encodeRequest(all.slice(-1), [100, 0, 0, 0])))
    await sim.run({ until: start + 5 })
    const first = n3.seqs.size
    expect(first).toBeGreaterThan(90)
    expect(first).toBeLessThan(120)
    expect(n3.cost).toBeLessThanOrEqual(12_000 + PeerBudget.cost(120))
    expect(stats().retransmitCapped).toBeGreaterThan(80)
    expect(stats().retransmitThrottled).toBeGreaterThan(80)
    await sim.run({ until: start + 2_000 })
    expect(n3.seqs.size).toBe(all.length)
    expect(stats().retransmitDeferred).toBeGreaterThan(80)
  })

  it('Infinity turns the budget off: every request is answered in full', async () => {
    const { sim, taps, send, all, stats } = await floodSetup({
      repairBytesPerSecondPerPeer: Number.POSITIVE_INFINITY,
    })
    const start = sim.now
    sim.every(1, start + 100, () => send('n3', encodeRequest(all.slice(-8), [0, 0, 0, 0])))
    await sim.run({ until: start + 100 })
    expect(taps.get('n3')!.data).toBeGreaterThanOrEqual(90 * all.length)
    expect(stats().retransmitThrottled ?? 0).toBe(0)
  })

  it('repair under 30 % loss still converges with a tight budget (deferred, not refused)', async () => {
    for (let seed = 1; seed <= 3; seed++) {
      const r = await measureRepair(seed, {
        psync: { repairBytesPerSecondPerPeer: 50_000, repairBurstBytes: 4_000 },
      })
      expect(r.converged, `seed ${seed}`).toBe(true)
      expect(r.stats.retransmitThrottled, `seed ${seed}`).toBeGreaterThan(0)
    }
  })
})

describe('restart answers', () => {
  it('a restart storm gets one LEAVES per restartAnswerIntervalMs, the repeats coalesced, the last one still answered', async () => {
    const { sim, taps, send, stats } = await floodSetup({}, 10)
    const start = sim.now
    // 1,000 RESTARTs in a second from n3.
    sim.every(1, start + 1_000, () => send('n3', encodeRestart()))
    await sim.run({ until: start + 1_300 })
    const leaves = taps.get('n3')!.leaves
    expect(leaves.length).toBeGreaterThanOrEqual(9)
    expect(leaves.length).toBeLessThanOrEqual(11)
    for (let i = 1; i < leaves.length; i++)
      expect(leaves[i]! - leaves[i - 1]!).toBeGreaterThanOrEqual(100)
    // The last RESTART, coalesced, was still answered after the storm.
    expect(leaves.at(-1)!).toBeGreaterThan(start + 1_000)
    expect(stats().restartAnswersCoalesced).toBeGreaterThan(980)
    // A RESTART from another peer is answered at once.
    const at = sim.now
    send('n4', encodeRestart())
    await sim.run({ until: at + 5 })
    expect(taps.get('n4')!.leaves).toEqual([at + 2])
  })

  it('restartAnswerIntervalMs 0 answers every RESTART', async () => {
    const { sim, taps, send } = await floodSetup({ restartAnswerIntervalMs: 0 }, 10)
    const start = sim.now
    sim.every(1, start + 50, () => send('n3', encodeRestart()))
    await sim.run({ until: start + 60 })
    expect(taps.get('n3')!.leaves.length).toBeGreaterThanOrEqual(49)
  })
})

describe('budget options', () => {
  it('bad values throw INVALID_ARGUMENT', () => {
    for (const bad of [0, -1, 0.5, Number.NaN, '1000' as unknown as number]) {
      expect(() => psync({ repairBytesPerSecondPerPeer: bad }), String(bad)).toThrow(
        /repairBytesPerSecondPerPeer must be a number >= 1/,
      )
      expect(() => psync({ repairBurstBytes: bad }), String(bad)).toThrow(
        /repairBurstBytes must be a number >= 1/,
      )
    }
    for (const bad of [-1, Number.POSITIVE_INFINITY, Number.NaN])
      expect(() => psync({ restartAnswerIntervalMs: bad }), String(bad)).toThrow(
        /restartAnswerIntervalMs must be a finite number >= 0/,
      )
    expect(() => psync({ repairBurstBytes: 0 })).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
    )
    expect(() => psync({ repairBytesPerSecondPerPeer: Number.POSITIVE_INFINITY })).not.toThrow()
  })
})
