import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { EventQueue } from '../src/event-queue.js'

describe('EventQueue', () => {
  it('pops in (time, scheduling order) for any sequence of pushes and pops', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.integer({ min: 0, max: 20 }), fc.constant(-1)), { maxLength: 300 }),
        (ops) => {
          const queue = new EventQueue()
          const model: { time: number; seq: number }[] = []
          let seq = 0
          for (const op of ops) {
            if (op >= 0) {
              queue.push(op, -1, -1, () => {})
              model.push({ time: op, seq: seq++ })
            } else {
              model.sort((a, b) => a.time - b.time || a.seq - b.seq)
              const expected = model.shift()
              const got = queue.pop()
              expect(got?.time).toBe(expected?.time)
              expect(got?.seq).toBe(expected?.seq)
            }
          }
          expect(queue.size).toBe(model.length)
        },
      ),
      { numRuns: 500 },
    )
  })
})
