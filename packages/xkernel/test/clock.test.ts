import { describe, expect, it } from 'vitest'
import { type Clock, realClock, ScopedClock, type Timer } from '../src/index.js'

/** The smallest clock that lets a test decide when timers fire. */
class FakeClock implements Clock {
  time = 0
  readonly timers = new Map<number, { due: number; callback: () => void }>()
  private next = 0

  now(): number {
    return this.time
  }

  setTimer(delayMs: number, callback: () => void): Timer {
    const id = this.next++
    this.timers.set(id, { due: this.time + Math.max(0, delayMs), callback })
    return { cancel: () => this.timers.delete(id) }
  }

  advance(ms: number): void {
    this.time += ms
    for (const [id, timer] of [...this.timers].sort(([, a], [, b]) => a.due - b.due)) {
      if (timer.due <= this.time && this.timers.delete(id)) timer.callback()
    }
  }
}

describe('ScopedClock', () => {
  it('reads time from its base clock', () => {
    const base = new FakeClock()
    const clock = new ScopedClock(base)
    base.time = 42.5
    expect(clock.now()).toBe(42.5)
  })

  it('fires timers through the base clock and tracks which are pending', () => {
    const base = new FakeClock()
    const clock = new ScopedClock(base)
    const fired: string[] = []
    clock.setTimer(10, () => fired.push('a'))
    clock.setTimer(20, () => fired.push('b'))
    expect(clock.pending).toBe(2)
    expect(base.timers.size).toBe(2)
    base.advance(10)
    expect(fired).toEqual(['a'])
    expect(clock.pending).toBe(1)
    base.advance(10)
    expect(fired).toEqual(['a', 'b'])
    expect(clock.pending).toBe(0)
  })

  it('cancel() cancels the base timer, and is idempotent and safe after firing', () => {
    const base = new FakeClock()
    const clock = new ScopedClock(base)
    let fired = 0
    const timer = clock.setTimer(10, () => fired++)
    timer.cancel()
    timer.cancel()
    expect(base.timers.size).toBe(0)
    expect(clock.pending).toBe(0)
    const later = clock.setTimer(5, () => fired++)
    base.advance(10)
    later.cancel()
    expect(fired).toBe(1)
  })

  it('close() cancels every pending timer, and later timers are no-ops', () => {
    const base = new FakeClock()
    const clock = new ScopedClock(base)
    const other = new ScopedClock(base)
    const fired: string[] = []
    for (let i = 0; i < 5; i++) clock.setTimer(i, () => fired.push(`scoped ${i}`))
    other.setTimer(3, () => fired.push('other'))
    clock.close()
    expect(clock.pending).toBe(0)
    expect(base.timers.size).toBe(1)
    const afterClose = clock.setTimer(1, () => fired.push('after close'))
    expect(base.timers.size).toBe(1)
    expect(clock.pending).toBe(0)
    afterClose.cancel()
    base.advance(100)
    expect(fired).toEqual(['other'])
    clock.close()
  })

  it('a timer that sets another timer keeps working until close', () => {
    const base = new FakeClock()
    const clock = new ScopedClock(base)
    let ticks = 0
    const tick = () => {
      ticks++
      clock.setTimer(10, tick)
    }
    clock.setTimer(10, tick)
    for (let i = 0; i < 5; i++) base.advance(10)
    expect(ticks).toBe(5)
    clock.close()
    for (let i = 0; i < 5; i++) base.advance(10)
    expect(ticks).toBe(5)
    expect(base.timers.size).toBe(0)
  })

  it('closing an outer scope silences timers of scopes built on it (host crash)', () => {
    const base = new FakeClock()
    const host = new ScopedClock(base)
    const session = new ScopedClock(host)
    let fired = 0
    session.setTimer(10, () => fired++)
    expect(host.pending).toBe(1)
    host.close()
    base.advance(100)
    expect(fired).toBe(0)
    expect(base.timers.size).toBe(0)
  })
})

describe('realClock', () => {
  it('is monotonic and fires timers, treating negative and NaN delays as 0', async () => {
    const clock = realClock()
    const start = clock.now()
    const order: string[] = []
    await new Promise<void>((resolve) => {
      clock.setTimer(Number.NaN, () => order.push('nan'))
      clock.setTimer(-5, () => order.push('negative'))
      clock.setTimer(15, () => {
        order.push('later')
        resolve()
      })
    })
    expect(order).toEqual(['nan', 'negative', 'later'])
    expect(clock.now() - start).toBeGreaterThanOrEqual(10)
  })

  it('lag() reports how late the event loop ran (monitorEventLoopDelay), and ScopedClock passes it on', async () => {
    const clock = realClock()
    const scoped = new ScopedClock(clock)
    expect(scoped.lag()).toBeGreaterThanOrEqual(0)
    await new Promise<void>((resolve) => clock.setTimer(30, resolve))
    const until = performance.now() + 150
    while (performance.now() < until) {
      // Blocks the event loop, as a long GC pause or a hot loop would.
    }
    await new Promise<void>((resolve) => clock.setTimer(30, resolve))
    expect(clock.lag!()).toBeGreaterThanOrEqual(60)
    expect(scoped.lag()).toBeGreaterThanOrEqual(60)
  })

  it('cancel() stops a timer', async () => {
    const clock = realClock()
    let fired = false
    clock.setTimer(1, () => (fired = true)).cancel()
    await new Promise<void>((resolve) => clock.setTimer(10, resolve))
    expect(fired).toBe(false)
  })
})
