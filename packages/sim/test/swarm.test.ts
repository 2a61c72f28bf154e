import { seededRandom } from '@consul/xkernel'
import { describe, expect, it } from 'vitest'
import { drawSwarm, type FaultPlan } from '../src/index.js'

const nodes5 = ['a', 'b', 'c', 'd', 'e']

function maxConcurrentCrashes(plan: FaultPlan): number {
  const down = new Set<string>()
  let max = 0
  for (const action of plan.actions) {
    if (action.type === 'crash') down.add(action.node)
    if (action.type === 'restart') down.delete(action.node)
    max = Math.max(max, down.size)
  }
  return max
}

describe('drawSwarm', () => {
  it('is a pure function of the seed', () => {
    for (let seed = 0; seed < 50; seed++) {
      const a = drawSwarm(seededRandom(seed), nodes5, { durationMs: 10_000 })
      const b = drawSwarm(seededRandom(seed), nodes5, { durationMs: 10_000 })
      expect(a).toEqual(b)
    }
  })

  it('keeps a majority up, restarts every crashed node, and ends with a calm tail', () => {
    let crashes = 0
    let partitions = 0
    let lossy = 0
    for (let seed = 0; seed < 300; seed++) {
      const plan = drawSwarm(seededRandom(seed), nodes5, { durationMs: 8_000, quietTailMs: 2_000 })
      expect(maxConcurrentCrashes(plan)).toBeLessThanOrEqual(2)
      const crashed = plan.actions.filter((a) => a.type === 'crash').length
      const restarted = plan.actions.filter((a) => a.type === 'restart').length
      expect(restarted).toBe(crashed)
      const last = plan.actions[plan.actions.length - 1]!
      expect(last.type).toBe('calm')
      expect(last.at).toBe(6_000)
      for (const action of plan.actions) expect(action.at).toBeLessThanOrEqual(6_000)
      const sorted = plan.actions.map((a) => a.at)
      expect(sorted).toEqual([...sorted].sort((x, y) => x - y))
      expect(plan.link.loss).toBeLessThanOrEqual(0.3)
      crashes += crashed
      partitions += plan.actions.filter((a) => a.type === 'partition' || a.type === 'block').length
      if (plan.link.loss > 0) lossy++
    }
    // The seeds explore: most draw crashes, partitions and loss somewhere.
    expect(crashes).toBeGreaterThan(100)
    expect(partitions).toBeGreaterThan(100)
    expect(lossy).toBeGreaterThan(150)
  })

  it('leaves out the fault classes switched off', () => {
    for (let seed = 0; seed < 100; seed++) {
      const plan = drawSwarm(seededRandom(seed), nodes5, {
        durationMs: 5_000,
        crashes: false,
        partitions: false,
        pauses: false,
        clogs: false,
        drift: false,
        maxLoss: 0,
        maxDuplicate: 0,
      })
      expect(plan.actions.map((a) => a.type)).toEqual(['calm'])
      expect(plan.link.loss).toBe(0)
      expect(plan.link.duplicate).toBe(0)
      expect(Object.values(plan.driftPpm).every((d) => d === 0)).toBe(true)
    }
  })

  it('a 3-node swarm never crashes two nodes at once', () => {
    for (let seed = 0; seed < 200; seed++) {
      const plan = drawSwarm(seededRandom(seed), ['a', 'b', 'c'], { durationMs: 5_000 })
      expect(maxConcurrentCrashes(plan)).toBeLessThanOrEqual(1)
    }
  })

  it('rejects a non-positive duration', () => {
    expect(() => drawSwarm(seededRandom(1), nodes5, { durationMs: 0 })).toThrow(RangeError)
  })
})
