import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  check,
  checkStaleReads,
  type KvCommand,
  type KvInput,
  type KvOperation,
  type KvOutput,
  type KvState,
  kvModel,
} from '../src/index.js'
import { bruteForceLinearizable, bruteForceStaleReads } from './support/brute-force.js'
import { readOnly, redis, type Store, sameOutput } from './support/redis-spec.js'
import { linearizableWorkload } from './support/workload.js'

const KEYS = ['a', 'b', 'c']
const VALUES = ['v', 'w', '7']
const key = fc.constantFrom(...KEYS)
const value = fc.constantFrom(...VALUES)
const field = fc.constantFrom('f', 'g')
const twoKeys = fc.uniqueArray(key, { minLength: 2, maxLength: 2 })

const single: fc.Arbitrary<KvCommand> = fc.oneof(
  { weight: 5, arbitrary: key.map((key): KvCommand => ({ op: 'get', key })) },
  {
    weight: 4,
    arbitrary: fc.tuple(key, value).map(([key, value]): KvCommand => ({ op: 'set', key, value })),
  },
  { weight: 2, arbitrary: key.map((key): KvCommand => ({ op: 'incr', key, by: 1 })) },
  { weight: 1, arbitrary: key.map((key): KvCommand => ({ op: 'del', key })) },
  { weight: 1, arbitrary: key.map((key): KvCommand => ({ op: 'append', key, value: 'x' })) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(key, value, fc.constantFrom('setnx', 'getset') as fc.Arbitrary<'setnx' | 'getset'>)
      .map(([key, value, op]): KvCommand => ({ op, key, value })),
  },
  { weight: 1, arbitrary: key.map((key): KvCommand => ({ op: 'getdel', key })) },
  { weight: 1, arbitrary: key.map((key): KvCommand => ({ op: 'strlen', key })) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(key, value, fc.constantFrom('nx', 'xx') as fc.Arbitrary<'nx' | 'xx'>, fc.boolean())
      .map(
        ([key, value, condition, get]): KvCommand => ({ op: 'set', key, value, condition, get }),
      ),
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(key, field, value)
      .map(([key, field, value]): KvCommand => ({ op: 'hset', key, fields: [[field, value]] })),
  },
  {
    weight: 1,
    arbitrary: fc.tuple(key, field).map(([key, field]): KvCommand => ({ op: 'hget', key, field })),
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(key, field)
      .map(([key, field]): KvCommand => ({ op: 'hincrby', key, field, by: 2 })),
  },
  { weight: 1, arbitrary: key.map((key): KvCommand => ({ op: 'hgetall', key })) },
)
const multiKey: fc.Arbitrary<KvCommand> = fc.oneof(
  { weight: 2, arbitrary: twoKeys.map((keys): KvCommand => ({ op: 'mget', keys })) },
  {
    weight: 2,
    arbitrary: fc.tuple(twoKeys, value).map(
      ([[a, b], value]): KvCommand => ({
        op: 'mset',
        entries: [
          [a!, value],
          [b!, value],
        ],
      }),
    ),
  },
  { weight: 1, arbitrary: twoKeys.map((keys): KvCommand => ({ op: 'del', keys })) },
  { weight: 1, arbitrary: twoKeys.map((keys): KvCommand => ({ op: 'exists', keys })) },
  { weight: 1, arbitrary: twoKeys.map(([a, b]): KvCommand => ({ op: 'rename', key: a!, to: b! })) },
)
const command: fc.Arbitrary<KvInput> = fc.oneof(
  { weight: 8, arbitrary: single },
  { weight: 2, arbitrary: multiKey },
  {
    weight: 1,
    arbitrary: fc
      .array(fc.oneof(single, multiKey), { minLength: 1, maxLength: 3 })
      .map((commands): KvInput => ({ op: 'multi', commands })),
  },
)

interface Draft {
  readonly client: number
  readonly input: KvInput
  /** How far the call and the return lie from the point where it takes effect. */
  readonly before: number
  readonly after: number
  /** `unknown`: took effect, the client never heard; `phantom`: unknown and never took effect. */
  readonly outcome: 'known' | 'unknown' | 'phantom'
  /** For the stale-read histories: how far behind the newest state a read is served. */
  readonly lag: number
}

const draft: fc.Arbitrary<Draft> = fc.record({
  client: fc.integer({ min: 1, max: 3 }),
  input: command,
  before: fc.integer({ min: 0, max: 25 }),
  after: fc.integer({ min: 0, max: 25 }),
  outcome: fc.constantFrom('known', 'known', 'known', 'known', 'unknown', 'phantom'),
  lag: fc.integer({ min: 0, max: 3 }),
})

/**
 * A linearizable history: a real sequential execution, the operations taking effect one after
 * another in array order, at points 10 apart, each inside its own interval; the random
 * distances of calls and returns from those points make up to five operations overlap.
 */
function fromSequence(drafts: readonly Draft[]): KvOperation[] {
  let store: Store = new Map()
  return drafts.map((d, i) => {
    const point = 10 * i + 5
    const call = point - d.before
    if (d.outcome === 'phantom')
      return { clientId: d.client, input: d.input, call, return: undefined }
    const { output, store: after } = redis(store, d.input)
    store = after
    if (d.outcome === 'unknown')
      return { clientId: d.client, input: d.input, call, return: undefined }
    return { clientId: d.client, input: d.input, call, return: point + d.after, output }
  })
}

/**
 * A history of a store whose replicas serve reads locally: writes as in `fromSequence`, each
 * read served `lag` writes behind the newest state, but never behind what its client read or
 * wrote before — on any key, so it meets even the strongest mode.
 */
function fromLaggingReplicas(drafts: readonly Draft[]): KvOperation[] {
  const versions: Store[] = [new Map()]
  const floor = new Map<number, number>()
  return drafts.map((d, i) => {
    const point = 10 * i + 5
    const call = point - d.before
    if (!readOnly(d.input)) {
      if (d.outcome === 'phantom')
        return { clientId: d.client, input: d.input, call, return: undefined }
      const { output, store } = redis(versions.at(-1)!, d.input)
      versions.push(store)
      floor.set(d.client, versions.length - 1)
      if (d.outcome === 'unknown')
        return { clientId: d.client, input: d.input, call, return: undefined }
      return { clientId: d.client, input: d.input, call, return: point + d.after, output }
    }
    const served = Math.max(floor.get(d.client) ?? 0, versions.length - 1 - d.lag)
    floor.set(d.client, served)
    const { output } = redis(versions[served]!, d.input)
    return { clientId: d.client, input: d.input, call, return: point + d.after, output }
  })
}

const ERROR = { error: 'ERR injected' }
const WRONG = { error: 'WRONGTYPE injected' }

/** Other outputs of the right shape for one command: some possible, some not. */
function alternatives(input: KvInput, output: KvOutput): KvOutput[] {
  const near = typeof output === 'number' ? [output + 1, output - 1] : []
  switch (input.op) {
    case 'multi': {
      const items = output as readonly KvOutput[]
      return input.commands.flatMap((command, index) =>
        alternatives(command, items[index]!).map((other) =>
          items.map((item, at) => (at === index ? other : item)),
        ),
      )
    }
    case 'get':
    case 'getset':
    case 'getdel':
    case 'hget':
      return [null, 'v', 'w', '7', '8', 'vx', WRONG]
    case 'set':
      return input.get === true ? [null, 'v', 'w', WRONG] : ['OK', null]
    case 'mget': {
      const items = output as readonly KvOutput[]
      return [null, 'v', 'w'].flatMap((other) =>
        items.map((_, at) => items.map((x, i) => (i === at ? other : x))),
      )
    }
    case 'mset':
      return ['OK']
    case 'rename':
      return ['OK', ERROR]
    case 'hgetall':
      return [
        [],
        [['f', 'v']],
        [
          ['f', 'v'],
          ['g', '7'],
        ],
        WRONG,
      ]
    case 'setnx':
    case 'del':
    case 'exists':
      return [...near, 0, 1, 2]
    default:
      return [...near, 0, 1, 2, 9, ERROR, WRONG]
  }
}

function mutate(history: readonly KvOperation[], pick: number, choice: number): KvOperation[] {
  const known = history.flatMap((op, index) => (op.return === undefined ? [] : [index]))
  if (known.length === 0) return [...history]
  const index = known[pick % known.length]!
  const { input, output } = history[index]!
  const candidates = alternatives(input, output!).filter(
    (candidate) => !sameOutput(input, candidate, output),
  )
  if (candidates.length === 0) return [...history]
  const replacement = candidates[choice % candidates.length]!
  return history.map((op, at) => (at === index ? { ...op, output: replacement } : op))
}

/** The witness really is one: real time respected, every known output reproduced. */
function isWitness(history: readonly KvOperation[], order: readonly KvOperation[]): boolean {
  let store: Store = new Map()
  const position = new Map(order.map((op, at) => [op, at]))
  for (const op of history) if (op.return !== undefined && !position.has(op)) return false
  for (const a of order)
    for (const b of order)
      if (a.return !== undefined && a.return < b.call && position.get(a)! > position.get(b)!)
        return false
  for (const op of order) {
    const { output, store: after } = redis(store, op.input)
    if (op.return !== undefined && !sameOutput(op.input, output, op.output)) return false
    store = after
  }
  return true
}

const MODES = [
  { readYourWrites: true, acrossKeys: false },
  { readYourWrites: false, acrossKeys: false },
  { readYourWrites: true, acrossKeys: true },
  { readYourWrites: false, acrossKeys: true },
] as const

const small = fc.array(draft, { minLength: 1, maxLength: 7 })
const long = fc.array(draft, { minLength: 1, maxLength: 60 })

describe('property: linearizability', () => {
  it('accepts every history of a sequential execution with overlapping intervals, with a true witness', () => {
    fc.assert(
      fc.property(long, (drafts) => {
        const history = fromSequence(drafts)
        const result = check(kvModel(), history)
        expect(result.result).toBe('ok')
        for (const part of result.partitions)
          expect(isWitness(part.operations, part.linearization!)).toBe(true)
      }),
      { numRuns: 300 },
    )
  })

  it('rejects the same histories once a read returns a value nothing ever wrote', () => {
    fc.assert(
      fc.property(long, fc.nat(), (drafts, pick) => {
        const history = fromSequence(drafts)
        const reads = history.flatMap((op, index) =>
          op.return !== undefined &&
          (op.input.op === 'get' || op.input.op === 'mget' || op.input.op === 'hget')
            ? [index]
            : [],
        )
        fc.pre(reads.length > 0)
        const index = reads[pick % reads.length]!
        const op = history[index]!
        const output =
          op.input.op === 'mget' ? op.input.keys.map(() => 'never-written') : 'never-written'
        const broken = history.map((other, at) => (at === index ? { ...op, output } : other))
        expect(check(kvModel(), broken).result).toBe('illegal')
        for (const mode of MODES) expect(checkStaleReads(broken, mode).result).toBe('illegal')
      }),
      { numRuns: 200 },
    )
  })

  it('agrees with a brute-force checker (every order real time allows) when any output is changed', () => {
    let illegal = 0
    fc.assert(
      fc.property(small, fc.nat(), fc.nat(), (drafts, pick, choice) => {
        const history = fromSequence(drafts)
        expect(bruteForceLinearizable(history)).toBe(true)
        const mutated = mutate(history, pick, choice)
        const expected = bruteForceLinearizable(mutated) ? 'ok' : 'illegal'
        if (expected === 'illegal') illegal++
        expect(check(kvModel(), mutated).result).toBe(expected)
      }),
      { numRuns: 600 },
    )
    // The comparison is worth something only if both verdicts came up often.
    expect(illegal).toBeGreaterThan(100)
    expect(illegal).toBeLessThan(550)
  })

  it('accepts a 20,000-operation history over 50 keys and 8 clients', () => {
    const history = linearizableWorkload({ operations: 20_000, keys: 50, clients: 8, seed: 3 })
    const result = check(kvModel(), history)
    expect(result.result).toBe('ok')
    expect(result.partitions).toHaveLength(50)
  })

  it('accepts a 1,000-operation history whose MGETs and MSETs join all 20 keys into one part', () => {
    const history = linearizableWorkload({
      operations: 1_000,
      keys: 20,
      clients: 8,
      seed: 4,
      unknownRate: 0.02,
      multiKeyRate: 0.1,
    })
    const result = check(kvModel(), history)
    expect(result.result).toBe('ok')
    expect(result.partitions).toHaveLength(1)
  })
})

describe('property: stale reads', () => {
  it('accepts every history of lagging replicas, in every mode', () => {
    fc.assert(
      fc.property(long, (drafts) => {
        const history = fromLaggingReplicas(drafts)
        for (const mode of MODES) expect(checkStaleReads(history, mode).result).toBe('ok')
      }),
      { numRuns: 200 },
    )
  })

  it('agrees with a brute-force reading of the README rules when any output is changed', () => {
    let illegal = 0
    fc.assert(
      fc.property(
        small,
        fc.nat(),
        fc.nat(),
        fc.boolean(),
        fc.constantFrom(...MODES),
        (drafts, pick, choice, lagging, mode) => {
          const history = lagging ? fromLaggingReplicas(drafts) : fromSequence(drafts)
          const mutated = mutate(history, pick, choice)
          const expected = bruteForceStaleReads(mutated, mode) ? 'ok' : 'illegal'
          if (expected === 'illegal') illegal++
          expect(checkStaleReads(mutated, mode).result).toBe(expected)
        },
      ),
      { numRuns: 800 },
    )
    expect(illegal).toBeGreaterThan(100)
  })

  it('accepts whatever is linearizable, in every mode', () => {
    fc.assert(
      fc.property(small, fc.nat(), fc.nat(), (drafts, pick, choice) => {
        const mutated = mutate(fromSequence(drafts), pick, choice)
        if (check(kvModel(), mutated).result === 'ok')
          for (const mode of MODES) expect(checkStaleReads(mutated, mode).result).toBe('ok')
      }),
      { numRuns: 300 },
    )
  })

  it('checks a 20,000-operation history of lagging replicas', () => {
    const history = linearizableWorkload({ operations: 20_000, keys: 50, clients: 8, seed: 5 })
    expect(checkStaleReads(history).result).toBe('ok')
  })

  it('accepts long linearizable histories with many unknown outcomes on few keys, never illegal', () => {
    // Hot keys, up to 10 % unknown outcomes: where unsound cuts of the search would show up.
    for (let seed = 1; seed <= 12; seed++) {
      const history = linearizableWorkload({
        operations: 400,
        keys: 1 + (seed % 3),
        clients: 2 + (seed % 7),
        seed,
        unknownRate: 0.1,
      })
      expect(check(kvModel(), history).result, `seed ${seed}`).toBe('ok')
      expect(checkStaleReads(history).result, `seed ${seed}`).toBe('ok')
    }
  })
})

describe('property: the model', () => {
  it('agrees with an independent sequential Redis on random command sequences', () => {
    fc.assert(
      fc.property(fc.array(command, { maxLength: 40 }), (commands) => {
        const model = kvModel()
        let store: Store = new Map()
        let state: KvState = model.init()
        for (const input of commands) {
          const { output, store: after } = redis(store, input)
          const stepped = model.step(state, input, output)
          expect(stepped.ok).toBe(true)
          if (stepped.ok) state = stepped.state
          store = after
          const flat = (entry: unknown) =>
            typeof entry === 'string' ? entry : Object.fromEntries(entry as Map<string, string>)
          expect(Object.fromEntries([...state].map(([k, v]) => [k, flat(v)]))).toEqual(
            Object.fromEntries(
              [...store].map(([k, e]) => [
                k,
                e.type === 'string' ? e.value : Object.fromEntries(e.fields),
              ]),
            ),
          )
        }
      }),
      { numRuns: 300 },
    )
  })
})
