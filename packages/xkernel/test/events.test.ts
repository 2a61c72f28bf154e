import { describe, expect, it, vi } from 'vitest'
import { EventBus } from '../src/index.js'

// Packages add events by declaration merging; a test can too.
declare module '../src/events.js' {
  interface ConsulEvents {
    'test.pinged': { readonly n: number }
  }
}

describe('EventBus', () => {
  it('runs handlers synchronously, in registration order, with the payload', () => {
    const bus = new EventBus()
    const calls: string[] = []
    bus.on('test.pinged', ({ n }) => calls.push(`first ${n}`))
    bus.on('test.pinged', ({ n }) => calls.push(`second ${n}`))
    bus.on('group.closed', ({ group }) => calls.push(`closed ${group}`))
    bus.emit('test.pinged', { n: 1 })
    expect(calls).toEqual(['first 1', 'second 1'])
    bus.emit('group.closed', { group: 'g' })
    expect(calls).toEqual(['first 1', 'second 1', 'closed g'])
  })

  it('emitting an event nobody listens to does nothing', () => {
    const bus = new EventBus()
    expect(() => bus.emit('test.pinged', { n: 1 })).not.toThrow()
  })

  it('on() returns an idempotent unsubscribe', () => {
    const bus = new EventBus()
    const handler = vi.fn()
    const off = bus.on('test.pinged', handler)
    const other = vi.fn()
    bus.on('test.pinged', other)
    off()
    off()
    bus.emit('test.pinged', { n: 2 })
    expect(handler).not.toHaveBeenCalled()
    expect(other).toHaveBeenCalledWith({ n: 2 })
  })

  it('has() tells whether anyone listens', () => {
    const bus = new EventBus()
    expect(bus.has('test.pinged')).toBe(false)
    const off = bus.on('test.pinged', () => {})
    expect(bus.has('test.pinged')).toBe(true)
    expect(bus.has('group.opened')).toBe(false)
    off()
    expect(bus.has('test.pinged')).toBe(false)
  })

  it('an emit in progress uses the handler list as it was when it started', () => {
    const bus = new EventBus()
    const calls: string[] = []
    let offB: () => void = () => {}
    bus.on('test.pinged', () => {
      calls.push('a')
      offB()
      bus.on('test.pinged', () => calls.push('late'))
    })
    offB = bus.on('test.pinged', () => calls.push('b'))
    bus.emit('test.pinged', { n: 1 })
    // b was removed during this emit but still runs in it; 'late' only from the next emit.
    expect(calls).toEqual(['a', 'b'])
    calls.length = 0
    bus.emit('test.pinged', { n: 2 })
    expect(calls).toEqual(['a', 'late'])
  })

  it('a handler that throws does not stop the others; the error is counted and reported', () => {
    const reported: [string, string, unknown][] = []
    const bus = new EventBus((event, owner, error) => reported.push([event, owner, error]))
    const boom = new Error('boom')
    const after = vi.fn()
    bus.on(
      'test.pinged',
      () => {
        throw boom
      },
      'psync',
    )
    bus.on('test.pinged', after)
    bus.emit('test.pinged', { n: 1 })
    expect(after).toHaveBeenCalledOnce()
    expect(bus.handlerErrors).toBe(1)
    expect(reported).toEqual([['test.pinged', 'psync', boom]])
  })

  it('the default owner is "app"', () => {
    const owners: string[] = []
    const bus = new EventBus((_event, owner) => owners.push(owner))
    bus.on('test.pinged', () => {
      throw new Error('x')
    })
    bus.emit('test.pinged', { n: 1 })
    expect(owners).toEqual(['app'])
  })

  it('clear() drops every handler', () => {
    const bus = new EventBus()
    const handler = vi.fn()
    bus.on('test.pinged', handler)
    bus.on('group.opened', handler)
    bus.clear()
    bus.emit('test.pinged', { n: 1 })
    bus.emit('group.opened', { group: 'g', members: ['a'] })
    expect(handler).not.toHaveBeenCalled()
    expect(bus.has('test.pinged')).toBe(false)
  })

  it('rejects a handler that is not a function with TypeError', () => {
    const bus = new EventBus()
    expect(() => bus.on('test.pinged', 'nope' as never)).toThrow(TypeError)
    expect(bus.has('test.pinged')).toBe(false)
  })
})

describe('Listeners', () => {
  it('calls handlers in order, unsubscribes, tolerates changes during a call, validates', async () => {
    const { Listeners } = await import('../src/index.js')
    const calls: string[] = []
    const list = new Listeners<[number]>(() => new RangeError('nope'))
    const offA = list.add((n) => {
      calls.push(`a${n}`)
      offA()
      list.add((m) => calls.push(`c${m}`))
    })
    list.add((n) => calls.push(`b${n}`))
    list.emit(1)
    list.emit(2)
    expect(calls).toEqual(['a1', 'b1', 'b2', 'c2'])
    expect(list.size).toBe(2)
    expect(() => list.add(42 as unknown as () => void)).toThrow(RangeError)
  })
})
