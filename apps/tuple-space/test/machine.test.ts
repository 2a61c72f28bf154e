import { decodeCommand, encodeCommand } from '@consul/dispatcher'
import { describe, expect, it } from 'vitest'
import { TupleSpaceError } from '../src/errors.js'
import {
  entries,
  type Ref,
  restoreSpace,
  type SpaceState,
  snapshotSpace,
  tupleSpaceClasses,
  tupleSpaceMachine,
} from '../src/machine.js'
import { formal, type Template, type Tuple } from '../src/tuple.js'
import { pick, randomTuple, rng } from './fixtures/random.js'

const { commands } = tupleSpaceMachine
const fresh = (): SpaceState => tupleSpaceMachine.initial()
let seq = 0
const ref = (origin = 'a', session = 's1'): Ref => ({ origin, session, seq: seq++ })
const out = (s: SpaceState, tuple: Tuple, r: Ref = ref()) => commands.out(s, { ...r, tuple })
const take = (s: SpaceState, template: Template, mode: 'in' | 'rd', block: boolean, r = ref()) =>
  commands.take(s, { ...r, template, mode, block })

describe('the tuple-space machine', () => {
  it('out adds; in takes the oldest match, rd reads it, inp/rdp answer none when nothing matches', () => {
    const s = fresh()
    out(s, ['t', 1])
    out(s, ['t', 2])
    expect(s.size).toBe(2)
    expect(take(s, ['t', formal.int], 'rd', false)).toMatchObject({
      kind: 'taken',
      entry: { tuple: ['t', 1] },
    })
    expect(s.size).toBe(2)
    expect(take(s, ['t', formal.int], 'in', true)).toMatchObject({ entry: { tuple: ['t', 1] } })
    expect(take(s, ['t', formal.int], 'in', false)).toMatchObject({ entry: { tuple: ['t', 2] } })
    expect(take(s, ['t', formal.int], 'in', false)).toEqual({ kind: 'none' })
    expect(take(s, ['t', formal.int], 'rd', false)).toEqual({ kind: 'none' })
    expect(s.size).toBe(0)
    expect(s.waiters.size).toBe(0)
  })

  it('"oldest" is the earliest epoch (rank-1 commands before the out), then origin, session, seq — not arrival', () => {
    const s = fresh()
    out(s, ['x', 'late-origin'], { origin: 'c', session: 's', seq: 0 })
    out(s, ['x', 'early-origin'], { origin: 'a', session: 's', seq: 5 })
    take(s, ['nothing'], 'in', false) // epoch 1
    out(s, ['x', 'next-epoch'], { origin: 'a', session: 's', seq: 0 })
    const order: unknown[] = []
    for (let i = 0; i < 3; i++) {
      const r = take(s, ['x', formal.string], 'in', false)
      order.push(r.kind === 'taken' ? r.entry.tuple[1] : r.kind)
    }
    expect(order).toEqual(['early-origin', 'late-origin', 'next-epoch'])
    expect(s.epoch).toBe(4)
  })

  it('an out never hands its tuple to a waiter: only the waiter’s claim does, once', () => {
    const s = fresh()
    const w = ref('b')
    expect(take(s, ['job', formal.int], 'in', true, w)).toEqual({ kind: 'waiting' })
    expect(commands.claim(s, w)).toEqual({ kind: 'waiting' })
    out(s, ['job', 7])
    expect(s.waiters.size).toBe(1)
    expect(s.size).toBe(1)
    expect(commands.claim(s, w)).toMatchObject({ kind: 'taken', entry: { tuple: ['job', 7] } })
    expect(s.size).toBe(0)
    expect(commands.claim(s, w)).toEqual({ kind: 'gone' })
  })

  it('a blocked rd is served by reading; the same take again does not register a second waiter', () => {
    const s = fresh()
    const w = ref()
    expect(take(s, ['cfg', formal.any], 'rd', true, w)).toEqual({ kind: 'waiting' })
    expect(take(s, ['cfg', formal.any], 'rd', true, w)).toEqual({ kind: 'waiting' })
    expect(s.waiters.size).toBe(1)
    out(s, ['cfg', 'v1'])
    expect(commands.claim(s, w)).toMatchObject({ kind: 'taken', entry: { tuple: ['cfg', 'v1'] } })
    expect(s.size).toBe(1)
    expect(s.waiters.size).toBe(0)
  })

  it('cancel removes waiters (true for each removed); a cancelled waiter’s claim finds it gone', () => {
    const s = fresh()
    const w1 = ref()
    const w2 = ref()
    take(s, ['a'], 'in', true, w1)
    expect(commands.cancel(s, { waiters: [w1, w2] })).toEqual([true, false])
    out(s, ['a'])
    expect(commands.claim(s, w1)).toEqual({ kind: 'gone' })
    expect(s.size).toBe(1)
  })

  it('release puts a taken entry back under its own key, in its old place', () => {
    const s = fresh()
    out(s, ['q', 1])
    out(s, ['q', 2])
    const taken = take(s, ['q', formal.int], 'in', false)
    expect(taken.kind).toBe('taken')
    const before = snapshotSpace(s)
    expect(
      commands.release(s, { entries: [(taken as { entry: never } & typeof taken).entry] }),
    ).toBe(1)
    expect(snapshotSpace(s).entries.map((e) => e[4])).toEqual([
      ['q', 1],
      ['q', 2],
    ])
    expect(before.entries).toHaveLength(1)
    expect(take(s, ['q', formal.int], 'in', false)).toMatchObject({ entry: { tuple: ['q', 1] } })
  })

  it('forget removes the waiters of the origin’s other sessions only', () => {
    const s = fresh()
    take(s, ['x'], 'in', true, ref('a', 'old'))
    take(s, ['x'], 'in', true, ref('a', 'old'))
    take(s, ['x'], 'in', true, ref('a', 'new'))
    take(s, ['x'], 'in', true, ref('b', 'old'))
    expect(commands.forget(s, { origin: 'a', session: 'new' })).toBe(2)
    expect([...s.waiters.values()].map((w) => `${w.origin}/${w.session}`)).toEqual([
      'a/new',
      'b/old',
    ])
  })

  it('only rank-1 commands move the epoch; every command checks its arguments the same way everywhere', () => {
    const s = fresh()
    out(s, ['a'])
    expect(s.epoch).toBe(0)
    take(s, ['a'], 'rd', false)
    commands.cancel(s, { waiters: [] })
    commands.forget(s, { origin: 'a', session: 'x' })
    expect(s.epoch).toBe(3)
    const thrown = (f: () => unknown) => {
      try {
        f()
      } catch (e) {
        return TupleSpaceError.isInstance(e) ? e.code : 'other'
      }
      return 'none'
    }
    expect(thrown(() => commands.out(s, { ...ref(), tuple: [undefined as never] }))).toBe(
      'BAD_TUPLE',
    )
    expect(thrown(() => commands.out(s, { origin: '', session: 's', seq: 1, tuple: ['a'] }))).toBe(
      'BAD_REQUEST',
    )
    expect(
      thrown(() =>
        commands.take(s, {
          ...ref(),
          template: [{ formal: 'x' }] as never,
          mode: 'in',
          block: true,
        }),
      ),
    ).toBe('BAD_TEMPLATE')
    expect(
      thrown(() =>
        commands.take(s, { ...ref(), template: ['a'], mode: 'x' as never, block: true }),
      ),
    ).toBe('BAD_REQUEST')
    expect(thrown(() => commands.cancel(s, {} as never))).toBe('BAD_REQUEST')
    expect(thrown(() => commands.release(s, { entries: [{ epoch: -1 }] as never }))).toBe(
      'BAD_REQUEST',
    )
  })

  it('snapshot and restore round-trip; restore refuses what is no snapshot', () => {
    const s = fresh()
    out(s, ['b', new Uint8Array([1])])
    out(s, ['a', 1.5])
    take(s, ['w', formal.bytes], 'in', true)
    const snap = snapshotSpace(s)
    const back = restoreSpace(structuredClone(snap))
    expect(snapshotSpace(back)).toEqual(snap)
    expect(back.size).toBe(2)
    expect(() => restoreSpace({ v: 2 })).toThrow(TupleSpaceError)
    expect(() => restoreSpace(null)).toThrow(TupleSpaceError)
  })

  it('restore is exact: a state sent through msgpack (as checkpoints and state transfers are) and restored goes on exactly like the original', () => {
    const random = rng(17)
    const wire = <T>(x: T): T => {
      const d = decodeCommand(encodeCommand({ tag: 'x', args: x, nonce: 0 }))
      if (typeof d === 'string') throw new Error(d)
      return d.args as T
    }
    const refs: Ref[] = []
    const taken: unknown[] = []
    /** A random command, drawn from what happened so far (refs of takes, entries taken). */
    const draw = (i: number): { tag: keyof typeof commands; args: unknown } => {
      const r = random()
      const tuple = randomTuple(random, 2)
      const origin = pick(random, ['a', 'b'])
      if (r < 0.4) return { tag: 'out', args: { origin, session: 's', seq: i, tuple } }
      if (r < 0.7) {
        const t = { origin, session: pick(random, ['s', 't']), seq: i }
        refs.push(t)
        const template = tuple.map((f) => (random() < 0.4 ? formal.any : f))
        const mode = random() < 0.7 ? 'in' : 'rd'
        return { tag: 'take', args: { ...t, template, mode, block: random() < 0.7 } }
      }
      if (r < 0.85 && refs.length > 0) return { tag: 'claim', args: pick(random, refs) }
      if (r < 0.9 && taken.length > 0) return { tag: 'release', args: { entries: [taken.pop()] } }
      if (r < 0.95) return { tag: 'forget', args: { origin: 'a', session: 't' } }
      return { tag: 'cancel', args: { waiters: refs.length > 0 ? [pick(random, refs)] : [] } }
    }
    const apply = (state: SpaceState, c: ReturnType<typeof draw>) => {
      const x = (commands[c.tag] as (s: SpaceState, a: unknown) => unknown)(state, c.args)
      const t = x as { kind?: string; entry?: unknown }
      if (t?.kind === 'taken' && (c.args as { mode?: string }).mode !== 'rd') taken.push(t.entry)
      return x
    }
    const s = fresh()
    for (let i = 0; i < 300; i++) apply(s, draw(i))
    expect(s.waiters.size).toBeGreaterThan(0)
    const back = restoreSpace(wire(snapshotSpace(s)))
    expect(back.epoch).toBe(s.epoch)
    expect(back.size).toBe(s.size)
    expect(wire(snapshotSpace(back))).toEqual(wire(snapshotSpace(s)))
    // The same commands on both from here on: the same results, the same states.
    let served = 0
    for (let i = 300; i < 600; i++) {
      const c = draw(i)
      const x = apply(s, c)
      const y = (commands[c.tag] as (s: SpaceState, a: unknown) => unknown)(back, c.args)
      expect(wire(y), `command ${i} (${c.tag})`).toEqual(wire(x))
      if (c.tag === 'claim' && (x as { kind: string }).kind === 'taken') served++
    }
    expect(served).toBeGreaterThan(0) // waiters restored from the snapshot were served
    expect(wire(snapshotSpace(back))).toEqual(wire(snapshotSpace(s)))
  })

  it('classes: out is rank 0, every other command rank 1 (bytes that are no command too)', () => {
    const bytes = (tag: string) => encodeCommand({ tag, args: {}, nonce: 1 })
    expect(tupleSpaceClasses(bytes('out'))).toBe(0)
    for (const tag of ['take', 'claim', 'cancel', 'release', 'forget'])
      expect(tupleSpaceClasses(bytes(tag))).toBe(1)
    expect(tupleSpaceClasses(new Uint8Array([0xc1]))).toBe(1)
  })
})

/**
 * What semantic order guarantees, played out on the bare machine: each wave's outs arrive in
 * a different order at each replica (early delivery), all of them after the earlier waves and
 * before the wave's rank-1 commands, which run in one order everywhere. Every rank-1 result
 * and the final state must be the same at every replica.
 */
describe('agreement under early delivery', () => {
  type Cmd = { tag: 'out' | 'take' | 'claim' | 'cancel'; args: unknown }
  type Wave = { outs: Cmd[]; ordered: Cmd[] }
  function drawWaves(seed: number): Wave[] {
    const random = rng(seed)
    const origins = ['a', 'b', 'c']
    const waves: Wave[] = []
    const takes: Ref[] = []
    let n = 0
    const template = (): Template => {
      const t: Template = randomTuple(random, 2)
      return t.map((f) => (random() < 0.5 ? f : random() < 0.5 ? formal.any : f))
    }
    for (let w = 0; w < 40; w++) {
      const outs: Cmd[] = Array.from({ length: Math.floor(random() * 6) }, () => ({
        tag: 'out',
        args: {
          origin: pick(random, origins),
          session: 's',
          seq: n++,
          tuple: randomTuple(random, 2),
        },
      }))
      const ordered: Cmd[] = []
      for (let i = Math.floor(random() * 4); i > 0; i--) {
        const r = random()
        if (r < 0.5 || takes.length === 0) {
          const t = { origin: pick(random, origins), session: 's', seq: n++ }
          takes.push(t)
          ordered.push({
            tag: 'take',
            args: {
              ...t,
              template: template(),
              mode: random() < 0.7 ? 'in' : 'rd',
              block: random() < 0.6,
            },
          })
        } else if (r < 0.9) ordered.push({ tag: 'claim', args: pick(random, takes) })
        else ordered.push({ tag: 'cancel', args: { waiters: [pick(random, takes)] } })
      }
      waves.push({ outs, ordered })
    }
    return waves
  }
  /** Plays the waves at one replica; `byArrival` keys outs by arrival order (the wrong way). */
  function run(waves: Wave[], seed: number, replicaSeed: number, byArrival = false) {
    const shuffle = rng(replicaSeed * 7919 + seed)
    const s = fresh()
    const results: unknown[] = []
    let arrived = 0
    for (const wave of waves) {
      const outs = [...wave.outs]
      for (let i = outs.length - 1; i > 0; i--) {
        const j = Math.floor(shuffle() * (i + 1))
        ;[outs[i], outs[j]] = [outs[j]!, outs[i]!]
      }
      for (const c of [...outs, ...wave.ordered]) {
        const args =
          byArrival && c.tag === 'out'
            ? { ...(c.args as object), origin: 'a', seq: arrived++ }
            : c.args
        results.push((commands[c.tag] as (s: SpaceState, a: unknown) => unknown)(s, args))
      }
    }
    return { results, snapshot: snapshotSpace(s), entries: entries(s).length }
  }
  it.each([1, 2, 3, 4, 5, 6, 7, 8])(
    'seed %i: three replicas with permuted outs agree on every result and the state',
    (seed) => {
      const waves = drawWaves(seed)
      const [x, y, z] = [run(waves, seed, 1), run(waves, seed, 2), run(waves, seed, 3)]
      expect(y.results).toEqual(x.results)
      expect(z.results).toEqual(x.results)
      expect(y.snapshot).toEqual(x.snapshot)
      expect(z.snapshot).toEqual(x.snapshot)
      // Something happened: tuples were taken and some remain or waiters wait.
      expect(x.results.some((r) => (r as { kind?: string })?.kind === 'taken')).toBe(true)
    },
  )

  it('has teeth: keyed by arrival order instead, replicas would take different tuples', () => {
    let disagreed = 0
    for (let seed = 1; seed <= 8; seed++) {
      const waves = drawWaves(seed)
      const x = run(waves, seed, 1, true)
      const y = run(waves, seed, 2, true)
      if (JSON.stringify(x.results) !== JSON.stringify(y.results)) disagreed++
    }
    expect(disagreed).toBeGreaterThan(0)
  })
})
