/**
 * The message log's crash consistency, on a MemoryStorage whose crash tears one record of
 * the last unsynced batch (as the simulator's disks do).
 */
import {
  type Clock,
  Counters,
  createLogger,
  MemoryStorage,
  memorySink,
  seededRandom,
} from '@consul/xkernel'
import { describe, expect, it } from 'vitest'
import type { GraphNode } from '../src/context-graph.js'
import { MessageLog } from '../src/log.js'

/** A clock whose timers never fire: commits are driven by hand. */
const still: Clock = { now: () => 0, setTimer: () => ({ cancel() {} }) }

function node(sender: number, seq: number): GraphNode {
  return {
    sender,
    seq,
    deps: seq > 1 ? [{ member: sender, seq: seq - 1 }] : [],
    depth: seq - 1,
    vc: [sender === 0 ? seq : 0, sender === 1 ? seq : 0],
    payload: new Uint8Array([seq]),
    restored: false,
    logged: false,
    frame: undefined,
    view: undefined,
  }
}

function open(storage: MemoryStorage) {
  const counters = new Counters()
  const log = new MessageLog(
    storage,
    still,
    5,
    counters,
    createLogger({ level: 'silent', sink: memorySink() }),
    'g',
  )
  return { log, counters }
}

describe('MessageLog', () => {
  it('a torn high-water record alone leaves the high-water mark certain (its own messages are in the log or were never sent)', async () => {
    let checked = 0
    for (let seed = 1; seed <= 60 && checked < 3; seed++) {
      const storage = new MemoryStorage()
      const { log } = open(storage)
      log.appendOwn(node(0, 1), () => {})
      await log.commit()
      log.appendOwn(node(0, 2), () => {})
      // The second batch (m/…, h/…) is written but not synced when the process dies, and the
      // crash tears one of its records.
      void log.commit()
      storage.crash({ corrupt: { probability: 1, random: seededRandom(seed) } })
      let damagedKey: string | undefined
      try {
        for (const _ of storage.scan()) void _
      } catch (error) {
        damagedKey = (error as { key?: string }).key
      }
      if (damagedKey === undefined || !damagedKey.startsWith('h/')) continue
      checked++
      const loaded = open(storage).log.load(2, 0)
      expect(loaded.ownHighWaterCertain, `seed ${seed}`).toBe(true)
      expect(loaded.ownHighWater).toBe(1)
      expect(loaded.frames.map((f) => f.seq)).toEqual([1])
    }
    expect(checked).toBeGreaterThan(0)
  })

  it('watermarks carry the boundary; a malformed boundary is not believed', async () => {
    const storage = new MemoryStorage()
    const { log } = open(storage)
    const watermarks = {
      prunedSeq: [3, 0],
      prunedDepth: [2, -1],
      prunedVc: [
        [3, 0],
        [0, 0],
      ],
      floor: 3,
      declared: false,
      boundary: [[0, 2, 1, [2, 0]] as const],
    }
    log.prune([], watermarks)
    await log.commit()
    expect(open(storage).log.load(2, 1).watermarks?.boundary).toEqual([[0, 2, 1, [2, 0]]])
    // A later generation with a boundary entry naming a member outside the group: unreadable,
    // so the generation before it is used.
    const { log: again } = open(storage)
    again.load(2, 1)
    again.prune([], { ...watermarks, boundary: [[5, 2, 1, [2, 0]] as const] })
    await again.commit()
    const loaded = open(storage).log.load(2, 1)
    expect(loaded.watermarks?.boundary).toEqual([[0, 2, 1, [2, 0]]])
  })

  it('an exclusion is recorded once applied and read back with its wave; a record naming no member, no cut or a bad wave is skipped', async () => {
    const storage = new MemoryStorage()
    const { log } = open(storage)
    log.recordExclusion(1, 7, 3)
    await log.commit()
    expect(open(storage).log.load(2, 0).exclusions).toEqual([{ member: 1, cut: 7, wave: 3 }])
    const put = (key: string, value: string) => storage.put(key, new TextEncoder().encode(value))
    put('x/0000000000z', '3 1') // member 35 of 2
    put('x/00000000000', '-1 1')
    await log.commit()
    const { log: again, counters } = open(storage)
    expect(again.load(2, 0).exclusions).toEqual([{ member: 1, cut: 7, wave: 3 }])
    expect(counters.snapshot().logUnreadableRecords).toBe(2)
    for (const bad of ['4 -2', '4 1.5', '4 1 9']) {
      put('x/00000000000', bad)
      const { log: third, counters: c } = open(storage)
      expect(third.load(2, 0).exclusions, bad).toEqual([{ member: 1, cut: 7, wave: 3 }])
      expect(c.snapshot().logUnreadableRecords, bad).toBe(2)
    }
    // Without a wave: read, never re-applied from the log (restart.ts), left to the decider.
    put('x/00000000000', '4')
    expect(open(storage).log.load(2, 0).exclusions).toContainEqual({
      member: 0,
      cut: 4,
      wave: undefined,
    })
  })
})
