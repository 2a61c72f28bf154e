/**
 * The checkpoint contract across a group's sessions (`SessionContext.checkpoints`): take every
 * session's state bottom first, give it back before the sessions start, and show in
 * `describe()` who takes part and who was restored.
 */
import { describe, expect, it } from 'vitest'
import {
  capability,
  type GroupCheckpoints,
  MemoryStorage,
  type SessionState,
  seededRandom,
  stack,
  XKernelError,
} from '../src/index.js'
import { LoopbackNetwork, ManualClock } from './fakes.js'

const bytes = (...b: number[]) => Uint8Array.from(b)

/** A protocol with state: `value` is what its checkpoint holds; `ready: false` defers. */
function stateful(name: string, log: string[], requires: ReturnType<typeof capability>[] = []) {
  const cap = capability<string, { value: number; ready: boolean }>(name)
  return {
    cap,
    factory: {
      name,
      requires,
      provides: [cap],
      raises: [],
      observes: [],
      create: () => ({
        open: () => {
          const control = { value: 0, ready: true }
          return {
            controls: { [name]: control },
            start: () => void log.push(`start ${name}`),
            checkpoint: () => (control.ready ? bytes(control.value) : undefined),
            restore: (state: Uint8Array) => {
              log.push(`restore ${name} ${state[0]}`)
              control.value = state[0]!
            },
          }
        },
      }),
    },
  }
}

/** The coordinator at the top: hands its context's `checkpoints` out, restores at open. */
function coordinator(log: string[], restoreWith?: () => readonly SessionState[]) {
  const out: { checkpoints?: GroupCheckpoints; error?: unknown } = {}
  return {
    out,
    factory: {
      name: 'coordinator',
      requires: [],
      provides: [],
      raises: [],
      observes: [],
      create: () => ({
        open: (ctx: { checkpoints: GroupCheckpoints }) => {
          out.checkpoints = ctx.checkpoints
          if (restoreWith !== undefined) {
            try {
              ctx.checkpoints.restore(restoreWith())
            } catch (error) {
              out.error = error
            }
          }
          return { controls: {}, start: () => void log.push('start coordinator') }
        },
      }),
    },
  }
}

async function host(restoreWith?: () => readonly SessionState[]) {
  const log: string[] = []
  const a = stateful('alpha', log)
  const plain = {
    name: 'plain',
    requires: [],
    provides: [],
    raises: [],
    observes: [],
    create: () => ({ open: () => ({ controls: {} }) }),
  }
  const b = stateful('beta', log)
  const c = coordinator(log, restoreWith)
  const network = new LoopbackNetwork('sync', ['a', 'b'])
  const h = await stack()
    .use(a.factory as never)
    .use(plain as never)
    .use(b.factory as never)
    .use(c.factory as never)
    .start({
      transport: network.transport('a'),
      clock: new ManualClock(),
      random: seededRandom(1),
      storage: new MemoryStorage({ name: 'disk' }),
    })
  const group = await h.open({ port: 'g', members: ['a', 'b'] })
  const alpha = (group as never as { get: (c: unknown) => { value: number; ready: boolean } }).get(
    a.cap,
  )
  const beta = (group as never as { get: (c: unknown) => { value: number; ready: boolean } }).get(
    b.cap,
  )
  return { h, log, alpha, beta, out: c.out }
}

describe('GroupCheckpoints', () => {
  it('take() gathers every session that has state, bottom first; undefined while one cannot', async () => {
    const { alpha, beta, out, h } = await host()
    alpha.value = 7
    beta.value = 9
    expect(out.checkpoints!.participants()).toEqual(['alpha', 'beta'])
    expect(out.checkpoints!.take()).toEqual([
      { protocol: 'alpha', state: bytes(7) },
      { protocol: 'beta', state: bytes(9) },
    ])
    beta.ready = false
    expect(out.checkpoints!.take()).toBeUndefined()
    const sessions = h.describe().sessions
    expect(sessions.map((s) => [s.protocol, s.checkpoint, s.restored])).toEqual([
      ['alpha', true, false],
      ['plain', false, false],
      ['beta', true, false],
      ['coordinator', false, false],
    ])
  })

  it('restore() gives each state back bottom first, before any session starts; describe() shows it', async () => {
    const { log, alpha, beta, h } = await host(() => [
      { protocol: 'beta', state: bytes(2) },
      { protocol: 'alpha', state: bytes(1) },
    ])
    expect(log).toEqual([
      'restore alpha 1',
      'restore beta 2',
      'start alpha',
      'start beta',
      'start coordinator',
    ])
    expect([alpha.value, beta.value]).toEqual([1, 2])
    expect(
      h
        .describe()
        .sessions.filter((s) => s.restored)
        .map((s) => s.protocol),
    ).toEqual(['alpha', 'beta'])
  })

  it('restore() of a protocol that is not there, or has no restore, throws and restores nothing; after start it throws', async () => {
    for (const states of [
      [
        { protocol: 'alpha', state: bytes(1) },
        { protocol: 'missing', state: bytes(1) },
      ],
      [{ protocol: 'plain', state: bytes(1) }],
      [{ protocol: 'alpha', state: 'x' as never }],
    ]) {
      const { log, alpha, out } = await host(() => states)
      expect(XKernelError.isInstance(out.error) && out.error.code).toBe('INVALID_ARGUMENT')
      expect(alpha.value).toBe(0)
      expect(log.filter((l) => l.startsWith('restore'))).toEqual([])
    }
    const { out } = await host()
    expect(() => out.checkpoints!.restore([])).toThrow(/before the sessions start/)
  })
})

describe('maxGauges', () => {
  it('takes, for each gauge, the highest any session reports', async () => {
    const { maxGauges } = await import('../src/index.js')
    expect(
      maxGauges([{ gauges: () => ({ a: 1, b: 5 }) }, { gauges: () => ({ a: 3, c: 0 }) }]),
    ).toEqual({ a: 3, b: 5, c: 0 })
    expect(maxGauges([])).toEqual({})
  })
})
