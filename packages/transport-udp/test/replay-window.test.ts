import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { ReplayWindow } from '../src/replay-window.js'

/** The rule the window implements, without its memory bound: a set of everything accepted. */
class Reference {
  epoch = -1
  top = 0
  readonly seen = new Set<number>()
  constructor(readonly size: number) {}
  accept(epoch: number, counter: number): string {
    if (epoch < this.epoch) return 'staleEpoch'
    if (epoch > this.epoch) {
      this.epoch = epoch
      this.seen.clear()
      this.top = counter
      this.seen.add(counter)
      return 'accepted'
    }
    if (counter + this.size <= this.top) return 'replayTooOld'
    if (this.seen.has(counter)) return 'replayed'
    this.seen.add(counter)
    this.top = Math.max(this.top, counter)
    return 'accepted'
  }
}

function accept(w: ReplayWindow, epoch: number, counter: number): string {
  const verdict = w.check(epoch, counter)
  if (verdict !== 'new' && verdict !== 'newEpoch') return verdict
  w.commit(epoch, counter)
  return 'accepted'
}

describe('replay window', () => {
  it('accepts each counter once, reordered within the window, and refuses older ones', () => {
    const w = new ReplayWindow(64)
    expect(accept(w, 5, 10)).toBe('accepted')
    expect(accept(w, 5, 10)).toBe('replayed')
    expect(accept(w, 5, 12)).toBe('accepted')
    expect(accept(w, 5, 11)).toBe('accepted') // late, inside the window
    expect(accept(w, 5, 11)).toBe('replayed')
    expect(accept(w, 5, 100)).toBe('accepted')
    expect(accept(w, 5, 37)).toBe('accepted') // 100 - 63: the oldest slot still open
    expect(accept(w, 5, 36)).toBe('replayTooOld')
    expect(accept(w, 5, 12)).toBe('replayTooOld')
  })

  it('starts over at a higher epoch and refuses lower ones', () => {
    const w = new ReplayWindow(64)
    expect(accept(w, 5, 1000)).toBe('accepted')
    expect(accept(w, 6, 1)).toBe('accepted') // a restart: counters start again
    expect(accept(w, 6, 2)).toBe('accepted')
    expect(accept(w, 5, 1001)).toBe('staleEpoch')
    expect(accept(w, 6, 1)).toBe('replayed')
  })

  it('a check alone never moves the window (forgeries are checked, never committed)', () => {
    const w = new ReplayWindow(64)
    accept(w, 5, 10)
    expect(w.check(9, 1)).toBe('newEpoch')
    expect(w.check(5, 2 ** 48 - 1)).toBe('new')
    expect(accept(w, 5, 11)).toBe('accepted')
    expect(w.epoch).toBe(5)
  })

  it('agrees with the unbounded rule on any sequence of epochs and counters', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(32, 64, 256),
        fc.array(
          fc.record({
            epoch: fc.integer({ min: 1, max: 3 }),
            // Mostly near each other, sometimes far: reordering, duplicates, jumps.
            counter: fc.oneof(
              fc.integer({ min: 1, max: 400 }),
              fc.integer({ min: 1, max: 2 ** 48 - 1 }),
            ),
          }),
          { maxLength: 300 },
        ),
        (size, datagrams) => {
          const w = new ReplayWindow(size)
          const ref = new Reference(size)
          for (const d of datagrams) {
            expect(accept(w, d.epoch, d.counter)).toBe(ref.accept(d.epoch, d.counter))
          }
        },
      ),
      { numRuns: 500 },
    )
  })

  it('delivers a sequence with loss and bounded reordering exactly once', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 60 }), { minLength: 1, maxLength: 500 }),
        fc.nat(),
        (jitter, seed) => {
          // Counter i arrives at time i + jitter[i] (< window): reordered, never too old; a
          // few are lost; then everything that arrived is replayed.
          const arrivals = jitter.map((j, i) => ({ counter: i + 1, at: i + j }))
          arrivals.sort((a, b) => a.at - b.at || a.counter - b.counter)
          const lost = new Set(
            arrivals.filter((_, i) => (i * 31 + seed) % 17 === 0).map((a) => a.counter),
          )
          const w = new ReplayWindow(64)
          const got: number[] = []
          for (const a of arrivals) {
            if (lost.has(a.counter)) continue
            if (accept(w, 1, a.counter) === 'accepted') got.push(a.counter)
          }
          expect(got.length).toBe(jitter.length - lost.size)
          // Replays of what arrived are refused (a lost one is new: the window lets it in once).
          for (const a of arrivals) {
            if (!lost.has(a.counter)) expect(accept(w, 1, a.counter)).not.toBe('accepted')
          }
        },
      ),
      { numRuns: 300 },
    )
  })
})
