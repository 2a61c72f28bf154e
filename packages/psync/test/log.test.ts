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
})
