/**
 * A chaos run against a real cluster: concurrent Redis clients (ioredis) on every replica do
 * GET/SET/INCR/APPEND/DEL/MGET and MULTI transactions on a few keys while replicas are killed
 * with SIGKILL (sometimes for longer than the suspicion timeout: excluded, they rejoin) and
 * started again. Every operation is recorded with its call and return times and its outcome:
 * a reply (`ok`), an error that guarantees it was not applied (`CLUSTERDOWN`, `LOADING`, `TRYAGAIN`, a
 * request never sent: `fail`), or nothing known (`UNCERTAIN`, a dropped connection: `unknown`).
 */
import { performance } from 'node:perf_hooks'
import {
  createRecorder,
  type KvCommand,
  type KvInput,
  type KvOutput,
  type Operation,
} from '@consul/linearizability'
import { Redis } from 'ioredis'
import type { Cluster } from '../../src/cluster.js'

export interface ChaosOptions {
  readonly durationMs: number
  /** Clients per replica. */
  readonly clientsPerReplica: number
  /** A seeded choice of operations and faults. */
  readonly seed: number
  /** Milliseconds between two faults (one replica down at a time). */
  readonly faultEveryMs: number
  /** How long a killed replica stays down: short, or past the suspicion timeout. */
  readonly downMs: readonly [number, number]
}

export interface ChaosResult {
  readonly history: Operation<KvInput, KvOutput>[]
  readonly kills: number
  readonly counts: { ok: number; failed: number; unknown: number }
}

/** A small seeded generator (mulberry32). */
function random(seed: number) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/**
 * Keys come in shards — a string key and a counter — and an operation (an MGET, a MULTI)
 * touches one shard only, so the checker's per-key partitioning keeps each part small.
 */
const SHARDS = [
  ['s0', 'n0'],
  ['s1', 'n1'],
  ['s2', 'n2'],
] as const

function nextOperation(rnd: () => number, client: number, seq: number): KvInput {
  const [str, num] = SHARDS[Math.floor(rnd() * SHARDS.length)]!
  const value = `${client}.${seq}`
  const r = rnd()
  const one = (x: number): KvCommand =>
    x < 0.3
      ? { op: 'get', key: str }
      : x < 0.45
        ? { op: 'set', key: str, value }
        : x < 0.6
          ? { op: 'incr', key: num }
          : x < 0.7
            ? { op: 'get', key: num }
            : x < 0.8
              ? { op: 'append', key: str, value: `+${value}` }
              : x < 0.85
                ? { op: 'del', key: str }
                : { op: 'mget', keys: [str, num] }
  if (r < 0.07) return { op: 'multi', commands: [one(rnd()), one(rnd()), one(rnd())] }
  return one(r / 0.93)
}

/** The Redis command of one operation. */
function words(c: KvCommand): string[] {
  switch (c.op) {
    case 'get':
      return ['GET', c.key]
    case 'set':
      return ['SET', c.key, c.value]
    case 'incr':
      return ['INCR', c.key]
    case 'append':
      return ['APPEND', c.key, c.value]
    case 'del':
      return c.keys === undefined ? ['DEL', c.key] : ['DEL', ...c.keys]
    case 'mget':
      return ['MGET', ...c.keys]
    default:
      throw new Error(`the chaos run does not send ${c.op}`)
  }
}

/** ioredis gives integers as numbers and errors inside EXEC as Error objects. */
function output(v: unknown): KvOutput {
  if (v instanceof Error) return { error: v.message }
  if (Array.isArray(v)) return v.map(output)
  return v as KvOutput
}

type Outcome = { kind: 'ok'; value: KvOutput } | { kind: 'fail' } | { kind: 'unknown' }

function classify(error: unknown): Outcome {
  const message = error instanceof Error ? error.message : String(error)
  if (/^(CLUSTERDOWN|LOADING|TRYAGAIN) /.test(message)) return { kind: 'fail' }
  // ioredis refused to send it (disconnected, offline queue off): it never left.
  if (/enableOfflineQueue/.test(message)) return { kind: 'fail' }
  // UNCERTAIN, a connection closed with the command in flight, anything else: unknown.
  if (/^UNCERTAIN /.test(message)) return { kind: 'unknown' }
  const name = (error as { name?: string })?.name
  if (name === 'ReplyError') return { kind: 'ok', value: { error: message } }
  return { kind: 'unknown' }
}

export async function runChaos(cluster: Cluster, options: ChaosOptions): Promise<ChaosResult> {
  const recorder = createRecorder<KvInput, KvOutput>({ now: () => performance.now() })
  const rnd = random(options.seed)
  const counts = { ok: 0, failed: 0, unknown: 0 }
  const clients: Redis[] = []
  let running = true
  let kills = 0
  const worker = async (id: number, port: number) => {
    const redis = new Redis({
      port,
      host: '127.0.0.1',
      lazyConnect: false,
      // Never resend a command on its own: a resent write could be applied twice.
      autoResendUnfulfilledCommands: false,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      retryStrategy: () => 50,
      enableReadyCheck: false,
    })
    redis.on('error', () => {})
    clients.push(redis)
    const mine = random(options.seed * 1000 + id)
    let seq = 0
    while (running) {
      if (redis.status !== 'ready') {
        await sleep(20)
        continue
      }
      const input = nextOperation(mine, id, seq++)
      const op = recorder.invoke(id, input)
      let outcome: Outcome
      try {
        if (input.op === 'multi') {
          const tx = redis.multi()
          for (const c of input.commands) tx.call(words(c)[0]!, ...words(c).slice(1))
          const results = await tx.exec()
          if (results === null) outcome = { kind: 'unknown' }
          else outcome = { kind: 'ok', value: results.map(([e, v]) => output(e ?? v)) }
        } else {
          const [name, ...args] = words(input)
          outcome = { kind: 'ok', value: output(await redis.call(name!, ...args)) }
        }
      } catch (error) {
        outcome = classify(error)
      }
      if (outcome.kind === 'ok') {
        counts.ok++
        op.ok(outcome.value)
      } else if (outcome.kind === 'fail') {
        counts.failed++
        op.fail()
        await sleep(20)
      } else {
        counts.unknown++
        op.unknown()
        await sleep(20)
      }
    }
  }
  const workers: Promise<void>[] = []
  let id = 0
  for (const r of cluster.replicas)
    for (let i = 0; i < options.clientsPerReplica; i++) workers.push(worker(id++, r.port))
  const faults = (async () => {
    const end = Date.now() + options.durationMs
    while (Date.now() + options.faultEveryMs < end) {
      await sleep(options.faultEveryMs)
      const victim = cluster.replicas[Math.floor(rnd() * cluster.replicas.length)]!
      await victim.kill('SIGKILL')
      kills++
      const [lo, hi] = options.downMs
      await sleep(lo + rnd() * (hi - lo))
      await victim.start()
    }
    await sleep(Math.max(0, end - Date.now()))
  })()
  await faults
  running = false
  await Promise.all(workers)
  for (const c of clients) c.disconnect()
  return { history: recorder.history(), kills, counts }
}
