/**
 * The directory's keyed semantic order: `directoryKeys` (what a `run` touches), and the keyed
 * machine's key clocks — applying the same runs in any order that keeps every conflicting
 * pair in place gives the same state, expiries included (the global-clock machine does not).
 */
import { encodeCommand } from '@consul/dispatcher'
import { conflict } from '@consul/order-semantic'
import { describe, expect, it } from 'vitest'
import {
  commands,
  Directory,
  directoryKeys,
  directoryMachine,
  keyedCommands,
  keyedDirectoryMachine,
  type RunArgs,
} from '../src/index.js'

const words = (...w: string[]) => w.map((x) => new TextEncoder().encode(x))
const run = (t: number, ...c: string[][]) => ({ c: c.map((w) => words(...w)), t })
const keysOf = (a: RunArgs) => directoryKeys(encodeCommand({ tag: 'run', args: a, nonce: 0 }))

describe('directoryKeys', () => {
  it("gives a run's keys, a write if any command writes, and 'all' where keys are unknown", () => {
    expect(keysOf(run(1, ['GET', 'k']))).toEqual({ keys: ['k'], write: false })
    expect(keysOf(run(1, ['set', 'k', 'v', 'PX', '5']))).toEqual({ keys: ['k'], write: true })
    expect(keysOf(run(1, ['MGET', 'a', 'b', 'a']))).toEqual({ keys: ['a', 'b'], write: false })
    expect(keysOf(run(1, ['DEL', 'a', 'b']))).toEqual({ keys: ['a', 'b'], write: true })
    expect(keysOf(run(1, ['MSET', 'a', '1', 'b', '2']))).toEqual({ keys: ['a', 'b'], write: true })
    expect(keysOf(run(1, ['RENAME', 'a', 'b']))).toEqual({ keys: ['a', 'b'], write: true })
    expect(keysOf(run(1, ['HSET', 'h', 'f', 'v']))).toEqual({ keys: ['h'], write: true })
    // MULTI … EXEC: the union; a write if one command writes.
    expect(keysOf(run(1, ['GET', 'a'], ['INCR', 'b'], ['HGET', 'h', 'f']))).toEqual({
      keys: ['a', 'b', 'h'],
      write: true,
    })
    for (const all of [['KEYS', '*'], ['DBSIZE'], ['FLUSHDB'], ['SCAN', '0'], ['NOPE', 'k']])
      expect(keysOf(run(1, ['GET', 'k'], all)), all[0]).toBe('all')
    // A wrong arity: no reliable key.
    expect(keysOf(run(1, ['GET']))).toBe('all')
    // Bytes that are no directory command.
    expect(directoryKeys(Uint8Array.of(1, 2, 3))).toBe('all')
    expect(directoryKeys(encodeCommand({ tag: 'run', args: { c: 'junk', t: 1 }, nonce: 0 }))).toBe(
      'all',
    )
    expect(directoryKeys(encodeCommand({ tag: 'other', args: { c: [], t: 1 }, nonce: 0 }))).toBe(
      'all',
    )
    // Binary keys keep every byte (latin1, as the store keys them).
    const binary = { c: [[new TextEncoder().encode('GET'), Uint8Array.of(0xff, 0)]], t: 1 }
    expect(keysOf(binary)).toEqual({ keys: ['\u00ff\u0000'], write: false })
  })
})

/** A deterministic PRNG. */
function prng(seed: number) {
  let s = seed >>> 0 || 1
  return () => {
    s ^= s << 13
    s >>>= 0
    s ^= s >>> 17
    s ^= s << 5
    s >>>= 0
    return s / 2 ** 32
  }
}

function randomRuns(random: () => number, n: number): RunArgs[] {
  const keys = ['a', 'b', 'c', 'h']
  const pick = () => keys[Math.floor(random() * keys.length)]!
  const one = (): string[] => {
    const k = pick()
    const d = random()
    if (d < 0.2)
      return [
        'SET',
        k,
        String(Math.floor(random() * 9)),
        'PX',
        String(1 + Math.floor(random() * 40)),
      ]
    if (d < 0.35) return ['INCR', k]
    if (d < 0.45) return ['PEXPIRE', k, String(1 + Math.floor(random() * 40))]
    if (d < 0.55) return ['GET', k]
    if (d < 0.62) return ['PTTL', k]
    if (d < 0.7) return ['DEL', k, pick()]
    if (d < 0.78) return ['MSET', k, '1', pick(), '2']
    if (d < 0.84) return ['HSET', 'h', 'f', String(Math.floor(random() * 9))]
    if (d < 0.88) return ['RENAME', k, pick()]
    if (d < 0.9) return ['FLUSHDB']
    if (d < 0.92) return ['DBSIZE']
    return ['APPEND', k, 'x']
  }
  return Array.from({ length: n }, () => ({
    c: Array.from({ length: random() < 0.2 ? 2 : 1 }, () => words(...one())),
    // Submitters' clocks disagree: times go back and forth.
    t: 1000 + Math.floor(random() * 100),
  }))
}

/** A random order of `runs` that keeps every conflicting pair in its original order. */
function reorder(random: () => number, runs: readonly RunArgs[]): RunArgs[] {
  const access = runs.map((r) => {
    const k = keysOf(r)
    return k === 'all' ? ({ all: true } as const) : { all: false as const, ...k }
  })
  const done = new Set<number>()
  const out: RunArgs[] = []
  while (out.length < runs.length) {
    const ready = runs
      .map((_, i) => i)
      .filter(
        (i) =>
          !done.has(i) &&
          runs.every((_, j) => j >= i || done.has(j) || !conflict(access[j]!, access[i]!)),
      )
    const i = ready[Math.floor(random() * ready.length)]!
    done.add(i)
    out.push(runs[i]!)
  }
  return out
}

function applyAll(
  machine: typeof keyedDirectoryMachine | typeof directoryMachine,
  apply: (d: Directory, a: RunArgs) => unknown,
  runs: readonly RunArgs[],
) {
  const d = new Directory()
  for (const r of runs) apply(d, r)
  const s = machine.snapshot(d) as { keys: [string][]; kc?: [number, [string, number][]] }
  // Canonical: keys sorted (a Map's order is the order of insertion, not state).
  const byKey = (a: [string, ...unknown[]], b: [string, ...unknown[]]) => (a[0] < b[0] ? -1 : 1)
  s.keys.sort(byKey)
  s.kc?.[1].sort(byKey)
  return JSON.stringify(s, (_k, v) =>
    v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v,
  )
}

describe('the keyed machine', () => {
  it('gives equal states for every order that keeps the conflicting pairs (200 histories × 4 orders)', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const random = prng(seed)
      const runs = randomRuns(random, 25)
      const reference = applyAll(keyedDirectoryMachine, keyedCommands.run, runs)
      for (let i = 0; i < 4; i++)
        expect(
          applyAll(keyedDirectoryMachine, keyedCommands.run, reorder(random, runs)),
          `seed ${seed}`,
        ).toBe(reference)
    }
  })

  it('is needed: with one global clock, writes to other keys change expiries', () => {
    let differ = 0
    for (let seed = 1; seed <= 50; seed++) {
      const random = prng(seed)
      const runs = randomRuns(random, 25)
      const reference = applyAll(directoryMachine, commands.run, runs)
      if (applyAll(directoryMachine, commands.run, reorder(random, runs)) !== reference) differ++
    }
    expect(differ).toBeGreaterThan(0)
  })

  it('keeps the key clocks across snapshot and restore', () => {
    const d = new Directory()
    keyedCommands.run(d, run(2000, ['SET', 'a', '1']))
    keyedCommands.run(d, run(1000, ['SET', 'b', '1', 'PX', '50']))
    const back = keyedDirectoryMachine.restore(keyedDirectoryMachine.snapshot(d))
    // b's clock is 1000 (a's write at 2000 does not count for b): it expires at 1050.
    expect(back.keys.get('b')?.expireAt).toBe(1050)
    keyedCommands.run(back, run(1010, ['PEXPIRE', 'b', '100']))
    expect(back.keys.get('b')?.expireAt).toBe(1110)
    expect(back.clock).toBe(2000)
  })
})
