/**
 * Seeded histories of a correct (linearizable) Redis-like store: clients issue commands one
 * after another with random durations, each takes effect at a random point of its interval,
 * and the outputs come from applying them in the order of those points. Some outcomes are
 * unknown — half of those took effect (perhaps after the client gave up), half never did.
 */
import type { KvInput, KvOperation } from '../../src/index.js'
import { redis, type Store } from './redis-spec.js'

export interface WorkloadOptions {
  readonly operations: number
  readonly keys: number
  readonly clients: number
  readonly seed: number
  /** Share of operations whose outcome is unknown. Default 0.01. */
  readonly unknownRate?: number
  /** Share of MGETs and MSETs of two keys (which join their keys' parts). Default 0. */
  readonly multiKeyRate?: number
}

export function linearizableWorkload(options: WorkloadOptions): KvOperation[] {
  const random = mulberry32(options.seed)
  const unknownRate = options.unknownRate ?? 0.01
  const clock = new Array<number>(options.clients).fill(0)
  const drafts: {
    clientId: number
    input: KvInput
    call: number
    return: number | undefined
    point: number | undefined
  }[] = []
  for (let n = 0; n < options.operations; n++) {
    const client = Math.floor(random() * options.clients)
    const key = `k${Math.floor(random() * options.keys)}`
    const multiKey = random() < (options.multiKeyRate ?? 0)
    const other = `k${Math.floor(random() * options.keys)}`
    const value = `${client + 1}${n}`
    const input: KvInput = !multiKey
      ? command(key, value, random())
      : random() < 0.5
        ? { op: 'mget', keys: [key, other] }
        : {
            op: 'mset',
            entries: [
              [key, value],
              [other, `${value}'`],
            ],
          }
    const call = clock[client]!
    const duration = 1 + random() * 20
    const unknown = random() < unknownRate
    const tookEffect = !unknown || random() < 0.5
    const point = tookEffect ? call + random() * duration * (unknown ? 3 : 1) : undefined
    drafts.push({
      clientId: client + 1,
      input,
      call,
      return: unknown ? undefined : call + duration,
      point,
    })
    clock[client] = call + duration + random() * 5
  }
  let store: Store = new Map()
  const outputs = new Map<number, KvOperation['output']>()
  const applied = drafts
    .map((draft, index) => ({ draft, index }))
    .filter(({ draft }) => draft.point !== undefined)
    .sort((a, b) => a.draft.point! - b.draft.point!)
  for (const { draft, index } of applied) {
    const result = redis(store, draft.input)
    store = result.store
    outputs.set(index, result.output)
  }
  return drafts.map((draft, index) =>
    draft.return === undefined
      ? { clientId: draft.clientId, input: draft.input, call: draft.call, return: undefined }
      : {
          clientId: draft.clientId,
          input: draft.input,
          call: draft.call,
          return: draft.return,
          output: outputs.get(index)!,
        },
  )
}

function command(key: string, value: string, draw: number): KvInput {
  if (draw < 0.4) return { op: 'get', key }
  if (draw < 0.62) return { op: 'set', key, value }
  if (draw < 0.77) return { op: 'incr', key, by: 1 }
  if (draw < 0.82) return { op: 'del', key }
  if (draw < 0.86) return { op: 'append', key, value: 'x' }
  if (draw < 0.9) return { op: 'setnx', key, value }
  if (draw < 0.94) return { op: 'getset', key, value }
  if (draw < 0.97) return { op: 'strlen', key }
  return { op: 'exists', key }
}

/** A small seeded generator (mulberry32): the same seed gives the same workload. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
