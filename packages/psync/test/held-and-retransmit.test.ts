import { seededRandom } from '@consul/xkernel'
import { describe, expect, it } from 'vitest'
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

describe('MissingTracker', () => {
  const timings = { nackDelayMs: 2, retransmitTimeoutMs: 10, maxBackoffMs: 40 }

  it('asks the hint first after the delay, then others with doubling backoff up to the ceiling', () => {
    const tracker = new MissingTracker(timings, 0, seededRandom(1))
    tracker.want([{ member: 1, seq: 4 }], 2, 100)
    expect(tracker.due(101, [1, 2])).toEqual(new Map())
    expect(tracker.due(102, [1, 2])).toEqual(new Map([[2, [{ member: 1, seq: 4 }]]]))
    expect(tracker.nextDueAt()).toBe(112)
    const targets: number[] = []
    const dueTimes: number[] = []
    let now = 112
    for (let i = 0; i < 5; i++) {
      const due = tracker.due(now, [1, 2])
      targets.push(...due.keys())
      now = tracker.nextDueAt()!
      dueTimes.push(now)
    }
    expect(targets.every((t) => t === 1 || t === 2)).toBe(true)
    // 20, 40, then capped at 40.
    expect(dueTimes.map((t, i) => t - (i === 0 ? 112 : dueTimes[i - 1]!))).toEqual([
      20, 40, 40, 40, 40,
    ])
    tracker.resolved(1, 4)
    expect(tracker.size).toBe(0)
    expect(tracker.nextDueAt()).toBeUndefined()
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
