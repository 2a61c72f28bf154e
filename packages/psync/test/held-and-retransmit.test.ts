import { seededRandom } from '@consul/xkernel'
import { describe, expect, it } from 'vitest'
import { FAST_TRIES, retryDelay } from '../src/backoff.js'
import type { DataFrame } from '../src/codec.js'
import { HeldMessages } from '../src/held.js'
import { MissingTracker } from '../src/retransmit.js'

const frame = (sender: number, seq: number, bytes = 10): DataFrame => ({
  kind: 1,
  sender,
  seq,
  deps: [],
  payload: new Uint8Array(bytes),
})

describe('HeldMessages', () => {
  it('releases a message once every missing ref has arrived, and chains through', () => {
    const held = new HeldMessages(10, 1000)
    expect(
      held.add(
        frame(1, 2),
        [
          { member: 0, seq: 1 },
          { member: 2, seq: 1 },
        ],
        0,
      ),
    ).toBe(true)
    expect(held.add(frame(1, 3), [{ member: 1, seq: 2 }], 0)).toBe(true)
    expect(held.release(0, 1)).toEqual([])
    expect(held.release(2, 1).map((f) => f.seq)).toEqual([2])
    expect(held.release(1, 2).map((f) => f.seq)).toEqual([3])
    expect(held.size).toBe(0)
    expect(held.heldBytes).toBe(0)
  })

  it('refuses what exceeds the count or byte bound', () => {
    const held = new HeldMessages(2, 25)
    expect(held.add(frame(0, 1), [{ member: 1, seq: 1 }], 0)).toBe(true)
    expect(held.add(frame(0, 2, 20), [{ member: 1, seq: 1 }], 0)).toBe(false)
    expect(held.add(frame(0, 3), [{ member: 1, seq: 1 }], 0)).toBe(true)
    expect(held.add(frame(0, 4), [{ member: 1, seq: 1 }], 0)).toBe(false)
    expect(held.size).toBe(2)
  })

  it('expires old messages and drops a member above a cut', () => {
    const held = new HeldMessages(10, 1000)
    held.add(frame(0, 1), [{ member: 2, seq: 9 }], 0)
    held.add(frame(1, 5), [{ member: 2, seq: 9 }], 50)
    held.add(frame(1, 6), [{ member: 2, seq: 9 }], 50)
    expect(held.expire(10)).toBe(1)
    expect(held.dropFrom(1, 5)).toBe(1)
    expect(held.heldIds()).toEqual([{ member: 1, seq: 5 }])
    expect(held.wanted()).toEqual([{ member: 2, seq: 9 }])
  })
})

describe('retryDelay', () => {
  it('gives FAST_TRIES retries at the base, then doubles up to the ceiling', () => {
    expect(FAST_TRIES).toBe(4)
    expect([0, 1, 2, 3, 4, 5, 6, 7, 40].map((a) => retryDelay(a, 50, 1000))).toEqual([
      50, 50, 50, 50, 100, 200, 400, 800, 1000,
    ])
    expect(retryDelay(0, 50, 20)).toBe(20)
  })
})

describe('MissingTracker', () => {
  const timings = { nackDelayMs: 2, retransmitTimeoutMs: 10, maxBackoffMs: 40 }

  it('asks the hint first after the delay, then others: a few quick tries, then doubling up to the ceiling', () => {
    const tracker = new MissingTracker(timings, 0, seededRandom(1))
    tracker.want([{ member: 1, seq: 4 }], 2, 100)
    expect(tracker.due(101, [1, 2])).toEqual(new Map())
    expect(tracker.due(102, [1, 2])).toEqual(new Map([[2, [{ member: 1, seq: 4 }]]]))
    expect(tracker.nextDueAt()).toBe(112)
    const targets: number[] = []
    const dueTimes: number[] = []
    let now = 112
    for (let i = 0; i < 7; i++) {
      const due = tracker.due(now, [1, 2])
      targets.push(...due.keys())
      now = tracker.nextDueAt()!
      dueTimes.push(now)
    }
    expect(targets.every((t) => t === 1 || t === 2)).toBe(true)
    // Retries 1-3 at the timeout (10), then 20, 40, and capped at 40.
    expect(dueTimes.map((t, i) => t - (i === 0 ? 112 : dueTimes[i - 1]!))).toEqual([
      10, 10, 10, 20, 40, 40, 40,
    ])
    tracker.resolved(1, 4)
    expect(tracker.size).toBe(0)
    expect(tracker.nextDueAt()).toBeUndefined()
  })

  it('a prompt asks the peer that has the predecessors now, whatever the backoff', () => {
    const tracker = new MissingTracker(timings, 0, seededRandom(3))
    const ref = { member: 1, seq: 4 }
    tracker.want([ref], 1, 0)
    tracker.due(2, [1, 2, 3])
    for (let now = 12; now < 200; now = tracker.nextDueAt()!) tracker.due(now, [1, 2, 3])
    const backedOff = tracker.nextDueAt()!
    tracker.prompt([ref], 3, 300)
    expect(tracker.nextDueAt()).toBe(Math.min(backedOff, 300))
    expect(tracker.due(300, [1, 2, 3])).toEqual(new Map([[3, [ref]]]))
    // At most one prompt per nack delay.
    tracker.prompt([ref], 2, 301)
    expect(tracker.nextDueAt()).toBeGreaterThan(301)
  })

  it('a peer heard again after a silence restarts the backoff and is asked next', () => {
    const tracker = new MissingTracker(timings, 0, seededRandom(4))
    const ref = { member: 1, seq: 9 }
    tracker.want([ref], 1, 0)
    for (let now = 2; now < 500; now = tracker.nextDueAt()!) tracker.due(now, [1, 2, 3])
    expect(tracker.nextDueAt()! - 500).toBeGreaterThan(0)
    tracker.peerHeard(2, 501)
    expect(tracker.nextDueAt()).toBe(501)
    expect(tracker.due(501, [1, 2, 3])).toEqual(new Map([[2, [ref]]]))
    // The backoff starts over: the next try is a quick one.
    expect(tracker.nextDueAt()).toBe(511)
  })

  it('wants with a limit are given up after that many tries and counted', () => {
    const tracker = new MissingTracker(timings, 0, seededRandom(5))
    tracker.want([{ member: 2, seq: 7 }], 1, 0, 'named', 3)
    let asked = 0
    for (let now = 2; tracker.size > 0; now = tracker.nextDueAt()!)
      asked += tracker.due(now, [1, 2]).size
    expect(asked).toBe(3)
    expect(tracker.abandonedCount()).toBe(1)
    expect(tracker.abandonedCount()).toBe(0)
  })

  it('never asks itself, and batches refs per target', () => {
    const tracker = new MissingTracker(timings, 0, seededRandom(2))
    tracker.want(
      [
        { member: 1, seq: 1 },
        { member: 2, seq: 1 },
      ],
      1,
      0,
    )
    tracker.want([{ member: 2, seq: 2 }], 0, 0)
    const due = tracker.due(5, [1])
    expect([...due.keys()]).toEqual([1])
    expect(due.get(1)).toHaveLength(3)
    tracker.retain((r) => r.member === 2)
    expect(tracker.size).toBe(2)
  })
})
