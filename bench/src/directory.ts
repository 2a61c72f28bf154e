/**
 * `pnpm bench directory`: the replicated directory (`@consul/directory`, three replica
 * processes, strong stack, total order, UDP loopback, LMDB each) against one `redis-server`
 * without persistence, in the same run, on the same machine:
 *
 * - **throughput and latency**: `redis-benchmark --csv` (requests/s, p50, p99 as it reports
 *   them) for `SET` and `GET` with 50 clients, without pipelining and with `-P 16`, random
 *   keys (`-r 100000`), 3-byte values. The headline is every client on replica a (what a
 *   single-endpoint Redis client does); `directorySpread*` runs three redis-benchmark
 *   processes at once, 17 + 17 + 16 clients, one per replica: its requests/s are all requests
 *   over the slowest process's time, its percentiles the worst of the three.
 * - **mixed workload**: redis-benchmark runs one command per test, so a small closed-loop load
 *   of our own (`mixedLoad`): 50 connections over a raw socket, one request in flight each,
 *   90 % `GET` / 10 % `SET` and 50 % / 50 % on the same key space, per-command percentiles.
 * - **the write path unloaded**: `SET` with one client, and the replicas' CPU (from
 *   `/proc/<pid>/stat`) idle and per request in each run: whether a figure is bound by CPU or
 *   by the protocol's waits (group commits every `logEveryMs`, acks after `ackDelayMs`).
 * - **memory**: on a fresh cluster, `BENCH_DIRECTORY_KEYS` keys (default 1,000,000; 16-byte
 *   keys, 16-byte values) in pipelined `MSET` batches of 1,500 (a replicated command is at
 *   most 64 KiB), a batch refused while the group changes views sent again; resident bytes per
 *   key from the replicas' `VmRSS` (their pid from `INFO server`), on the way and at the end,
 *   and the same keys in redis (RSS and `used_memory`) beside it. A `PING` probe on every
 *   replica meanwhile gives the longest event-loop stall. The checkpoint size is approximated
 *   by the replica's LMDB folder on disk (allocated blocks), which also holds the message log:
 *   `INFO` has no checkpoint-size figure.
 * - **recovery**: replica b is SIGKILLed and started again on its storage (time to active,
 *   then its key count checked), then killed again and started with its data folder wiped,
 *   so it can only come back by a state transfer from a peer: the time `start()` takes, the
 *   keys it holds then, and the time until it holds them all. At the end, the three replicas'
 *   state digests are compared.
 *
 * `BENCH_DIRECTORY_QUICK=1`: fewer requests, 50,000 keys, shorter mixed loads (under a
 * minute). `BENCH_DIRECTORY_ONLY=throughput` or `=memory` runs one half (memory includes
 * recovery). Every child process (redis-server, redis-benchmark, the replicas) is killed at
 * the end, on failure too.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { cpus, loadavg } from 'node:os'
import { join } from 'node:path'
import { type Cluster, freePorts, startCluster } from '@consul/directory/cluster'

const QUICK = process.env.BENCH_DIRECTORY_QUICK === '1'
/** `throughput` or `memory` (with recovery): one half only, while working on it. */
const ONLY = process.env.BENCH_DIRECTORY_ONLY
const KEYS = Number(process.env.BENCH_DIRECTORY_KEYS ?? (QUICK ? 50_000 : 1_000_000))
const CLIENTS = 50
const KEYSPACE = 100_000
/** Requests per redis-benchmark run, sized so each one lasts seconds, not minutes. */
const REQUESTS = QUICK
  ? {
      redis: { SET: 50_000, GET: 50_000, SET16: 500_000, GET16: 500_000 },
      directory: { SET: 10_000, GET: 20_000, SET16: 30_000, GET16: 100_000 },
    }
  : {
      redis: { SET: 200_000, GET: 200_000, SET16: 2_000_000, GET16: 2_000_000 },
      directory: { SET: 50_000, GET: 200_000, SET16: 200_000, GET16: 1_000_000 },
    }
const MIXED_SECONDS = QUICK ? 2 : 8
const MSET_BATCH = 1_500
const MSET_IN_FLIGHT = 16
/** Longest a single redis-benchmark run may take before it is killed as stuck. */
const RUN_TIMEOUT_MS = 180_000
const RECOVER_TIMEOUT_MS = 240_000
/** Loading takes under a minute on a quiet 2-core machine; a group that lost its primary for this long is reported as such. */
const LOAD_TIMEOUT_MS = QUICK ? 60_000 : 150_000
/**
 * The launcher's defaults (Failure Detection's 1,000 ms, a checkpoint every 64 waves) unless
 * `BENCH_DIRECTORY_SUSPECT_AFTER_MS` / `BENCH_DIRECTORY_CHECKPOINT_EVERY_WAVES` say otherwise.
 */
const SUSPECT_AFTER_MS = Number(process.env.BENCH_DIRECTORY_SUSPECT_AFTER_MS ?? 1_000)
const CHECKPOINT_EVERY_WAVES = Number(process.env.BENCH_DIRECTORY_CHECKPOINT_EVERY_WAVES ?? 64)
const CLUSTER = {
  replicas: 3,
  stack: 'strong',
  order: 'total',
  output: 'ignore',
  suspectAfterMs: SUSPECT_AFTER_MS,
  checkpointEveryWaves: CHECKPOINT_EVERY_WAVES,
} as const
const CONFIGURATION =
  'directory: 3 replica processes, strong stack (psync, divider, failure-detection, membership, total order, dispatcher, recovery, restart), UDP loopback, LMDB; redis: one redis-server, --save "" --appendonly no'

const benchStarted = performance.now()
/** Where a long run is, on stderr (the table goes to stdout). */
const progress = (what: string) =>
  process.stderr.write(
    `directory: ${what} (+${Math.round((performance.now() - benchStarted) / 1000)} s)\n`,
  )
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const round = (x: number, digits = 2) => {
  const f = 10 ** digits
  return Math.round(x * f) / f
}

// ---------------------------------------------------------------------------------------------
// Child processes: every one is registered, so the end (or a crash) can kill it.

const children = new Set<ChildProcess>()
const killAll = () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
}

function track(c: ChildProcess): ChildProcess {
  children.add(c)
  c.once('exit', () => children.delete(c))
  return c
}

// ---------------------------------------------------------------------------------------------
// A minimal RESP2 client over a raw socket: replies in request order, no reconnects.

type Resp = string | number | null | Buffer | Resp[] | Error

class RespConnection {
  private buffer: Buffer = Buffer.alloc(0)
  private readonly waiting: { resolve: (r: Resp) => void; reject: (e: Error) => void }[] = []
  private failure: Error | undefined

  private constructor(private readonly socket: Socket) {
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => this.receive(chunk))
    const fail = (error: Error) => {
      this.failure = error
      for (const w of this.waiting.splice(0)) w.reject(error)
    }
    socket.on('error', fail)
    socket.on('close', () => fail(new Error('connection closed')))
  }

  static open(port: number): Promise<RespConnection> {
    return new Promise((resolve, reject) => {
      const s = connect(port, '127.0.0.1')
      s.once('error', reject)
      s.once('connect', () => {
        s.off('error', reject)
        resolve(new RespConnection(s))
      })
    })
  }

  /** Writes one encoded request (or several, concatenated) and resolves with the next `count` replies. */
  sendRaw(encoded: Buffer | string, count = 1): Promise<Resp>[] {
    if (this.failure !== undefined) return [Promise.reject(this.failure)]
    const replies = Array.from(
      { length: count },
      () => new Promise<Resp>((resolve, reject) => this.waiting.push({ resolve, reject })),
    )
    this.socket.write(encoded)
    return replies
  }

  /** Whether the connection failed (closed or errored): open another. */
  get broken(): boolean {
    return this.failure !== undefined
  }

  send(...args: string[]): Promise<Resp> {
    return this.sendRaw(encode(args))[0]!
  }

  close(): void {
    this.socket.destroy()
  }

  private receive(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk])
    let offset = 0
    for (;;) {
      const parsed = parseReply(this.buffer, offset)
      if (parsed === undefined) break
      offset = parsed.end
      // An error reply resolves too (as an Error): the caller counts or throws it.
      this.waiting.shift()?.resolve(parsed.value)
    }
    this.buffer = offset === this.buffer.length ? Buffer.alloc(0) : this.buffer.subarray(offset)
  }
}

function encode(args: readonly string[]): string {
  let out = `*${args.length}\r\n`
  for (const a of args) out += `$${Buffer.byteLength(a)}\r\n${a}\r\n`
  return out
}

function parseReply(b: Buffer, at: number): { value: Resp; end: number } | undefined {
  if (at >= b.length) return undefined
  const eol = b.indexOf('\r\n', at)
  if (eol < 0) return undefined
  const line = b.toString('latin1', at + 1, eol)
  switch (b[at]) {
    case 43: // +
      return { value: line, end: eol + 2 }
    case 45: // -
      return { value: new Error(line), end: eol + 2 }
    case 58: // :
      return { value: Number(line), end: eol + 2 }
    case 36: {
      // $
      const n = Number(line)
      if (n < 0) return { value: null, end: eol + 2 }
      if (b.length < eol + 2 + n + 2) return undefined
      return { value: b.subarray(eol + 2, eol + 2 + n), end: eol + 2 + n + 2 }
    }
    case 42: {
      // *
      const n = Number(line)
      if (n < 0) return { value: null, end: eol + 2 }
      const items: Resp[] = []
      let end = eol + 2
      for (let i = 0; i < n; i++) {
        const item = parseReply(b, end)
        if (item === undefined) return undefined
        items.push(item.value)
        end = item.end
      }
      return { value: items, end }
    }
    default:
      throw new Error(`unexpected RESP type byte ${b[at]}`)
  }
}

/** `INFO <section>` as a map of its `field:value` lines. */
async function info(port: number, section: string): Promise<Map<string, string>> {
  const c = await RespConnection.open(port)
  try {
    const reply = await c.send('INFO', section)
    if (reply instanceof Error) throw reply
    const out = new Map<string, string>()
    for (const line of String(reply).split(/\r?\n/)) {
      const colon = line.indexOf(':')
      if (colon > 0 && !line.startsWith('#')) out.set(line.slice(0, colon), line.slice(colon + 1))
    }
    return out
  } finally {
    c.close()
  }
}

// ---------------------------------------------------------------------------------------------
// redis-server and redis-benchmark

async function startRedis(): Promise<{ port: number; pid: number; stop: () => Promise<void> }> {
  const [port] = await freePorts(1)
  const child = track(
    spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    ),
  )
  child.on('error', () => {})
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  for (let i = 0; ; i++) {
    try {
      const c = await RespConnection.open(port!)
      const pong = await c.send('PING')
      c.close()
      if (pong === 'PONG') break
    } catch {
      // not listening yet
    }
    if (i >= 100 || child.exitCode !== null)
      throw new Error(
        `redis-server did not start on port ${port} (is it installed? Debian: apt-get install redis-server)`,
      )
    await sleep(50)
  }
  return {
    port: port!,
    pid: child.pid!,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      await exited
    },
  }
}

interface BenchmarkResult {
  readonly rps: number
  readonly avgMs: number
  readonly p50Ms: number
  readonly p95Ms: number
  readonly p99Ms: number
  readonly maxMs: number
  readonly requests: number
}

/** One `redis-benchmark --csv` run of one test; its CSV row. */
function redisBenchmark(
  port: number,
  test: 'set' | 'get',
  options: { clients: number; requests: number; pipeline: number },
): Promise<BenchmarkResult> {
  const args = [
    '-h',
    '127.0.0.1',
    '-p',
    String(port),
    '-t',
    test,
    '-c',
    String(options.clients),
    '-n',
    String(options.requests),
    '-r',
    String(KEYSPACE),
    '-P',
    String(options.pipeline),
    '--csv',
  ]
  const child = track(spawn('redis-benchmark', args, { stdio: ['ignore', 'pipe', 'pipe'] }))
  let out = ''
  let err = ''
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()))
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS)
    child.once('error', (e) => {
      clearTimeout(timer)
      reject(e)
    })
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
      const rows = out
        .trim()
        .split('\n')
        .map((l) => l.split(',').map((f) => f.replace(/^"|"$/g, '')))
      const header = rows[0] ?? []
      const row = rows.find((r) => r[0] === test.toUpperCase())
      if (code !== 0 || row === undefined || header[1] !== 'rps') {
        reject(
          new Error(
            `redis-benchmark ${args.join(' ')} ended (${signal ?? code}) without a result${signal === 'SIGKILL' ? ` within ${RUN_TIMEOUT_MS} ms` : ''}: ${err.trim() || out.trim()}`,
          ),
        )
        return
      }
      const field = (name: string) => Number(row[header.indexOf(name)])
      resolve({
        rps: field('rps'),
        avgMs: field('avg_latency_ms'),
        p50Ms: field('p50_latency_ms'),
        p95Ms: field('p95_latency_ms'),
        p99Ms: field('p99_latency_ms'),
        maxMs: field('max_latency_ms'),
        requests: options.requests,
      })
    })
  })
}

/** Three redis-benchmark processes at once, one per port, the clients and requests split. */
async function spreadBenchmark(
  ports: readonly number[],
  test: 'set' | 'get',
  options: { clients: number; requests: number; pipeline: number },
): Promise<BenchmarkResult> {
  const share = (total: number, i: number) =>
    Math.floor(total / ports.length) + (i < total % ports.length ? 1 : 0)
  const parts = await Promise.all(
    ports.map((p, i) =>
      redisBenchmark(p, test, {
        clients: share(options.clients, i),
        requests: share(options.requests, i),
        pipeline: options.pipeline,
      }),
    ),
  )
  const seconds = Math.max(...parts.map((r) => r.requests / r.rps))
  const worst = (f: (r: BenchmarkResult) => number) => Math.max(...parts.map(f))
  return {
    rps: options.requests / seconds,
    avgMs: parts.reduce((s, r) => s + r.avgMs * r.requests, 0) / options.requests,
    p50Ms: worst((r) => r.p50Ms),
    p95Ms: worst((r) => r.p95Ms),
    p99Ms: worst((r) => r.p99Ms),
    maxMs: worst((r) => r.maxMs),
    requests: options.requests,
  }
}

// ---------------------------------------------------------------------------------------------
// The mixed workload: closed loop, one request in flight per connection.

interface MixedResult {
  readonly opsPerSecond: number
  readonly getP50Ms: number
  readonly getP99Ms: number
  readonly setP50Ms: number
  readonly setP99Ms: number
  readonly errors: number
}

const percentile = (sorted: Float64Array, p: number) =>
  sorted.length === 0
    ? Number.NaN
    : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!

async function mixedLoad(
  ports: readonly number[],
  readFraction: number,
  seconds: number,
): Promise<MixedResult> {
  const connections = await Promise.all(
    Array.from({ length: CLIENTS }, (_, i) => RespConnection.open(ports[i % ports.length]!)),
  )
  const gets: number[] = []
  const sets: number[] = []
  let errors = 0
  // A fixed xorshift, so both servers see the same sequence of commands.
  let seed = 0x9e3779b9
  const random = () => {
    seed ^= seed << 13
    seed ^= seed >>> 17
    seed ^= seed << 5
    return (seed >>> 0) / 2 ** 32
  }
  const key = () => `key:${String(Math.floor(random() * KEYSPACE)).padStart(12, '0')}`
  const started = performance.now()
  const deadline = started + seconds * 1000
  try {
    await Promise.all(
      connections.map(async (c) => {
        while (performance.now() < deadline) {
          const read = random() < readFraction
          const t = performance.now()
          const reply = await (read ? c.send('GET', key()) : c.send('SET', key(), 'xxx'))
          const ms = performance.now() - t
          if (reply instanceof Error) errors++
          else (read ? gets : sets).push(ms)
        }
      }),
    )
  } finally {
    for (const c of connections) c.close()
  }
  const elapsed = (performance.now() - started) / 1000
  const g = Float64Array.from(gets).sort()
  const s = Float64Array.from(sets).sort()
  return {
    opsPerSecond: (gets.length + sets.length) / elapsed,
    getP50Ms: percentile(g, 0.5),
    getP99Ms: percentile(g, 0.99),
    setP50Ms: percentile(s, 0.5),
    setP99Ms: percentile(s, 0.99),
    errors,
  }
}

// ---------------------------------------------------------------------------------------------
// Memory and recovery

const rssBytes = (pid: number) => {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  if (m === null) throw new Error(`no VmRSS for pid ${pid}`)
  return Number(m[1]) * 1024
}

/** CPU time (user + system, ms) a process has used so far. */
const cpuMs = (pid: number) => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // utime and stime are the 14th and 15th fields (the 12th and 13th after the command name).
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS
}
const CLOCK_TICKS = 100

/** Runs `work`, and the CPU the processes `pids` spent on it: µs per request, cores busy. */
async function withCpu<T extends BenchmarkResult>(
  pids: readonly number[],
  work: () => Promise<T>,
): Promise<T & { cpuUsPerRequest: number; cpuCores: number }> {
  const sum = () => pids.reduce((s, p) => s + cpuMs(p), 0)
  const cpu0 = sum()
  const t0 = performance.now()
  const r = await work()
  const cpu = sum() - cpu0
  return {
    ...r,
    cpuUsPerRequest: (cpu * 1000) / r.requests,
    cpuCores: cpu / (performance.now() - t0),
  }
}

/** Bytes a folder takes on disk (allocated blocks: LMDB's map file is sparse). */
function diskBytes(dir: string): number {
  let total = 0
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name)
    total += entry.isDirectory() ? diskBytes(p) : statSync(p).blocks * 512
  }
  return total
}

interface LoadResult {
  readonly ms: number
  /** Batches sent again after an error reply or a lost connection. */
  readonly retries: number
  /** The error replies seen, by kind (`LOADING`, `UNCERTAIN CLOSED`, …). */
  readonly errors: string
}

/**
 * `count` keys `mem:<n>` with 16-byte values, in `MSET` batches pipelined `MSET_IN_FLIGHT`
 * deep. A batch answered with an error (`LOADING`, `UNCERTAIN …` while the group changes
 * views) is sent again after a pause: `MSET` of the same keys and values is idempotent.
 */
async function loadKeys(
  port: number,
  count: number,
  timeoutMs: number,
  onFifth: (sent: number) => void = () => {},
): Promise<LoadResult> {
  const value = 'v'.repeat(16)
  const batch = (start: number) => {
    const args = ['MSET']
    for (let k = start; k < Math.min(count, start + MSET_BATCH); k++)
      args.push(`mem:${String(k).padStart(12, '0')}`, value)
    return encode(args)
  }
  const todo: number[] = []
  for (let b = count - (count % MSET_BATCH || MSET_BATCH); b >= 0; b -= MSET_BATCH) todo.push(b)
  const errors = new Map<string, number>()
  let retries = 0
  const again = async (start: number, kind: string) => {
    errors.set(kind, (errors.get(kind) ?? 0) + 1)
    retries++
    await sleep(200)
    todo.push(start)
  }
  const started = performance.now()
  const deadline = Date.now() + timeoutMs
  const inFlight = new Set<Promise<void>>()
  let c: RespConnection | undefined
  let reported = 0
  try {
    while (todo.length > 0 || inFlight.size > 0) {
      const sent = count - todo.length * MSET_BATCH
      if (count >= 100_000 && sent - reported >= count / 5) {
        reported = sent
        progress(`  ${sent} keys sent to port ${port}, ${retries} batches retried`)
        onFifth(sent)
      }
      if (Date.now() > deadline)
        throw new Error(
          `loading ${count} keys did not finish within ${timeoutMs} ms (${retries} retries: ${[...errors].map(([k, n]) => `${k} ×${n}`).join(', ')})`,
        )
      if (c === undefined || c.broken) {
        c?.close()
        c = await RespConnection.open(port).catch(() => undefined)
        if (c === undefined) {
          await sleep(200)
          continue
        }
      }
      while (todo.length > 0 && inFlight.size < MSET_IN_FLIGHT) {
        const start = todo.pop()!
        const p: Promise<void> = c
          .sendRaw(batch(start))[0]!
          .then(
            (reply) =>
              reply instanceof Error
                ? again(
                    start,
                    /^(\S+)(?: \S+: ([A-Z_]+):)?/.exec(reply.message)!.slice(1).join(' ').trim(),
                  )
                : undefined,
            () => again(start, 'connection lost'),
          )
          .finally(() => inFlight.delete(p))
        inFlight.add(p)
      }
      await Promise.race(inFlight)
    }
  } finally {
    c?.close()
  }
  return {
    ms: performance.now() - started,
    retries,
    errors: [...errors].map(([k, n]) => `${k} ×${n}`).join(', ') || 'none',
  }
}

/**
 * `PING` every 20 ms on its own connection until stopped: a PING is answered by the
 * connection at once, so its latency is how long the replica's event loop was busy.
 */
function stallProbe(port: number): {
  stop: () => Promise<{ maxMs: number; p99Ms: number; lostConnections: number }>
} {
  let running = true
  let lostConnections = 0
  const samples: number[] = []
  const done = (async () => {
    while (running) {
      const c = await RespConnection.open(port).catch(() => undefined)
      try {
        while (running && c !== undefined) {
          const t = performance.now()
          await c.send('PING')
          samples.push(performance.now() - t)
          await sleep(20)
        }
      } catch {
        lostConnections++ // the replica closed it (or died): open another
      } finally {
        c?.close()
      }
      if (running) await sleep(100)
    }
  })()
  return {
    stop: async () => {
      running = false
      await done
      const sorted = Float64Array.from(samples).sort()
      return {
        maxMs: sorted[sorted.length - 1] ?? Number.NaN,
        p99Ms: percentile(sorted, 0.99),
        lostConnections,
      }
    },
  }
}

/** A server's pid, from `INFO server` (a replica's is its `consul-directory serve` process). */
const pidOf = async (port: number) => Number((await info(port, 'server')).get('process_id'))

async function keyCount(port: number): Promise<number> {
  const keyspace = (await info(port, 'keyspace')).get('db0')
  return Number(/keys=(\d+)/.exec(keyspace ?? '')?.[1] ?? 0)
}

/** Waits until the server at `port` holds at least `keys` keys (a replica catching up). */
async function untilKeys(port: number, keys: number, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const n = await keyCount(port).catch(() => -1)
    if (n >= keys) return n
    if (Date.now() > deadline) throw new Error(`port ${port} holds ${n} keys, not ${keys}`)
    await sleep(100)
  }
}

async function timedStart(
  cluster: Cluster,
  name: string,
): Promise<{ ms: number; restored: boolean }> {
  const r = cluster.replica(name)
  const started = performance.now()
  await r.start()
  return { ms: performance.now() - started, restored: r.restored }
}

// ---------------------------------------------------------------------------------------------

type Row = Record<string, number | string>

function put(
  out: Row,
  prefix: string,
  r: BenchmarkResult & { cpuUsPerRequest?: number; cpuCores?: number },
): void {
  out[`${prefix}Rps`] = Math.round(r.rps)
  out[`${prefix}P50Ms`] = r.p50Ms
  out[`${prefix}P99Ms`] = r.p99Ms
  if (r.cpuUsPerRequest !== undefined) out[`${prefix}CpuUsPerRequest`] = round(r.cpuUsPerRequest, 1)
  if (r.cpuCores !== undefined) out[`${prefix}CpuCores`] = round(r.cpuCores, 2)
}

export async function benchDirectory(): Promise<Row> {
  const out: Row = {
    mode: QUICK ? 'quick' : 'full',
    cores: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    loadAverage1mAtStart: round(loadavg()[0]!),
    suspectAfterMs: SUSPECT_AFTER_MS,
    checkpointEveryWaves: CHECKPOINT_EVERY_WAVES,
  }
  const onExit = () => killAll()
  process.on('exit', onExit)
  let redis: Awaited<ReturnType<typeof startRedis>> | undefined
  let cluster: Cluster | undefined
  try {
    redis = await startRedis()
    out.redisVersion = (await info(redis.port, 'server')).get('redis_version') ?? 'unknown'
    if (ONLY !== 'memory') {
      cluster = await startCluster(CLUSTER)
      const ports = cluster.replicas.map((r) => r.port)
      const a = ports[0]!

      // The write path unloaded: one client, one SET at a time.
      progress('idle CPU, SET with one client')
      const replicaPids = await Promise.all(ports.map(pidOf))
      // What the group costs with no client at all (timers: log commits, acks, heartbeats).
      const idle0 = replicaPids.reduce((x, p) => x + cpuMs(p), 0)
      await sleep(2_000)
      out.directoryIdleCpuCores = round(
        (replicaPids.reduce((x, p) => x + cpuMs(p), 0) - idle0) / 2_000,
        2,
      )
      put(
        out,
        'redisSetC1',
        await redisBenchmark(redis.port, 'set', { clients: 1, requests: 20_000, pipeline: 1 }),
      )
      put(
        out,
        'directorySetC1',
        await withCpu(replicaPids, () =>
          redisBenchmark(a, 'set', { clients: 1, requests: QUICK ? 300 : 1_000, pipeline: 1 }),
        ),
      )

      // Throughput and latency, redis then the directory, test by test.
      for (const [test, pipeline] of [
        ['set', 1],
        ['get', 1],
        ['set', 16],
        ['get', 16],
      ] as const) {
        const label = `${test === 'set' ? 'Set' : 'Get'}${pipeline === 1 ? '' : 'P16'}`
        progress(`${test.toUpperCase()}, 50 clients, -P ${pipeline}`)
        const k =
          `${test.toUpperCase()}${pipeline === 1 ? '' : '16'}` as keyof typeof REQUESTS.redis
        put(
          out,
          `redis${label}`,
          await withCpu([redis.pid], () =>
            redisBenchmark(redis!.port, test, {
              clients: CLIENTS,
              requests: REQUESTS.redis[k],
              pipeline,
            }),
          ),
        )
        put(
          out,
          `directory${label}`,
          await withCpu(replicaPids, () =>
            redisBenchmark(a, test, {
              clients: CLIENTS,
              requests: REQUESTS.directory[k],
              pipeline,
            }),
          ),
        )
        put(
          out,
          `directorySpread${label}`,
          await spreadBenchmark(ports, test, {
            clients: CLIENTS,
            requests: REQUESTS.directory[k],
            pipeline,
          }),
        )
      }
      const num = (k: string) => Number(out[k])
      out.aimSetRpsRatio = round(num('directorySetRps') / num('redisSetRps'), 3)
      out.aimSetP16RpsRatio = round(num('directorySetP16Rps') / num('redisSetP16Rps'), 3)
      out.aimSetP50Ratio = round(num('directorySetP50Ms') / num('redisSetP50Ms'), 1)
      out.aimsMet = [
        `set rps ≥ 0.5× redis: ${num('aimSetRpsRatio') >= 0.5 ? 'yes' : 'no'}`,
        `set -P 16 rps ≥ 0.5× redis: ${num('aimSetP16RpsRatio') >= 0.5 ? 'yes' : 'no'}`,
        `set p50 ≤ 2× redis: ${num('aimSetP50Ratio') <= 2 ? 'yes' : 'no'}`,
      ].join('; ')

      // The mixed workload, on the keys the SET runs left (key:<12 digits>, 0 ≤ n < 100,000).
      for (const readFraction of [0.9, 0.5]) {
        const tag = `mixedRead${Math.round(readFraction * 100)}`
        progress(`mixed load, ${readFraction * 100}% GET`)
        const r = await mixedLoad([redis.port], readFraction, MIXED_SECONDS)
        const cpu0 = replicaPids.map(cpuMs)
        const t0 = performance.now()
        const d = await mixedLoad([a], readFraction, MIXED_SECONDS)
        const wallMs = performance.now() - t0
        const cpu = replicaPids.map((p, i) => cpuMs(p) - cpu0[i]!)
        out[`${tag}DirectoryCpuCores`] = round(cpu.reduce((x, y) => x + y, 0) / wallMs, 2)
        out[`${tag}ReplicaACpuCores`] = round(cpu[0]! / wallMs, 2)
        out[`${tag}RedisOpsPerSecond`] = Math.round(r.opsPerSecond)
        out[`${tag}DirectoryOpsPerSecond`] = Math.round(d.opsPerSecond)
        out[`${tag}RedisGetP50Ms`] = round(r.getP50Ms, 3)
        out[`${tag}RedisSetP50Ms`] = round(r.setP50Ms, 3)
        out[`${tag}DirectoryGetP50Ms`] = round(d.getP50Ms, 3)
        out[`${tag}DirectoryGetP99Ms`] = round(d.getP99Ms, 3)
        out[`${tag}DirectorySetP50Ms`] = round(d.setP50Ms, 3)
        out[`${tag}DirectorySetP99Ms`] = round(d.setP99Ms, 3)
        out[`${tag}Errors`] = r.errors + d.errors
      }
      await cluster.stop()
      cluster = undefined
    }

    if (ONLY !== 'throughput') {
      // Memory: a fresh cluster, so its log and checkpoint hold only the loaded keys.
      progress(`loading ${KEYS} keys`)
      cluster = await startCluster({ ...CLUSTER, startTimeoutMs: RECOVER_TIMEOUT_MS })
      // A cluster that falls apart under the load is a result too: say so, keep the rest.
      try {
        const [ra, rb] = [cluster.replica('a'), cluster.replica('b')]
        const [pidA, pidB] = [await pidOf(ra.port), await pidOf(rb.port)]
        await sleep(500)
        const before = { a: rssBytes(pidA), b: rssBytes(pidB), disk: diskBytes(rb.dataDir) }
        const probes = cluster.replicas.map((r) => stallProbe(r.port))
        const replicas = cluster.replicas
        // Resident and disk bytes per key on the way (replica b): what is known if the load fails.
        const curve: string[] = []
        try {
          const load = await loadKeys(ra.port, KEYS, LOAD_TIMEOUT_MS, (sent) =>
            curve.push(
              `${Math.round(sent / 1000)}k: ${Math.round((rssBytes(pidB) - before.b) / sent)} B RSS, ${Math.round((diskBytes(rb.dataDir) - before.disk) / sent)} B LMDB`,
            ),
          )
          out.keysLoaded = KEYS
          out.loadKeysPerSecond = Math.round(KEYS / (load.ms / 1000))
          out.loadRetries = load.retries
          out.loadErrorReplies = load.errors
        } finally {
          // Stopped and reported whether the load finished or not: they say why not.
          out.directoryBytesPerKeyReplicaBDuringLoad = curve.join('; ')
          const stalls = await Promise.all(probes.map((p) => p.stop()))
          out.loadMaxEventLoopStallMs = round(Math.max(...stalls.map((x) => x.maxMs)), 1)
          out.loadPingP99Ms = round(Math.max(...stalls.map((x) => x.p99Ms)), 1)
          out.loadProbeConnectionsLost = stalls.reduce((n, x) => n + x.lostConnections, 0)
          out.viewsAfterLoad = (
            await Promise.all(
              replicas.map(async (r) => {
                const i = await info(r.port, 'consul').catch(() => new Map<string, string>())
                return `${r.name} ${i.get('recovery') ?? '?'} view ${i.get('view_id') ?? '?'} [${i.get('view_members') ?? '?'}] keys ${i.get('keys') ?? '?'}`
              }),
            )
          ).join('; ')
        }
        for (const r of cluster.replicas) await untilKeys(r.port, KEYS, LOAD_TIMEOUT_MS)
        await sleep(2_000) // a checkpoint (every 64 waves) and the allocator settle
        out.directoryRssBytesPerKey = Math.round((rssBytes(pidA) - before.a) / KEYS)
        out.directoryRssBytesPerKeyReplicaB = Math.round((rssBytes(pidB) - before.b) / KEYS)
        out.directoryRssBytesReplicaB = rssBytes(pidB)
        const diskAfter = diskBytes(rb.dataDir)
        out.directoryLmdbBytes = diskAfter
        out.directoryLmdbBytesPerKey = Math.round((diskAfter - before.disk) / KEYS)
        // The same keys in redis (emptied first), for scale.
        const flush = await RespConnection.open(redis.port)
        await flush.send('FLUSHALL')
        flush.close()
        await sleep(200)
        const redisBefore = {
          rss: rssBytes(redis.pid),
          used: Number((await info(redis.port, 'memory')).get('used_memory')),
        }
        await loadKeys(redis.port, KEYS, LOAD_TIMEOUT_MS)
        out.redisRssBytesPerKey = Math.round((rssBytes(redis.pid) - redisBefore.rss) / KEYS)
        out.redisUsedMemoryBytesPerKey = Math.round(
          (Number((await info(redis.port, 'memory')).get('used_memory')) - redisBefore.used) / KEYS,
        )

        progress('recovery of b')
        // Recovery from its own storage: SIGKILL b, start it again, time until active.
        await rb.kill('SIGKILL')
        const own = await timedStart(cluster, 'b')
        out.recoverFromStorageMs = Math.round(own.ms)
        out.recoverFromStorageRestored = String(own.restored)
        out.recoverFromStorageKeys = await keyCount(rb.port)
        // Recovery with its folder wiped: only a state transfer from a peer can bring it back.
        await rb.kill('SIGKILL')
        rmSync(rb.dataDir, { recursive: true, force: true })
        mkdirSync(rb.dataDir, { recursive: true })
        const wipedStarted = performance.now()
        try {
          const wiped = await timedStart(cluster, 'b')
          out.recoverWipedReadyMs = Math.round(wiped.ms)
          out.recoverWipedRestored = String(wiped.restored)
          const atReady = await keyCount(rb.port)
          out.recoverWipedKeysAtReady = atReady
          await untilKeys(rb.port, KEYS, RECOVER_TIMEOUT_MS)
          out.recoverWipedCaughtUpMs = Math.round(performance.now() - wipedStarted)
          out.recoverWipedResult =
            atReady >= KEYS
              ? 'ok'
              : `start() resolved (active, INFO loading:0) holding ${atReady} of ${KEYS} keys; all of them ${out.recoverWipedCaughtUpMs} ms after the start`
        } catch (error) {
          out.recoverWipedResult = `failed: ${error instanceof Error ? error.message : String(error)}`
        }
        // The three replicas' state digests (SHA-256 of the state in key order) at the end.
        const digests = await Promise.all(
          cluster.replicas.map((r) =>
            r.report(60_000).then(
              (x) => x.dump?.digest ?? 'none',
              () => 'no answer',
            ),
          ),
        )
        out.replicasAgreeAtEnd = digests.every((d) => d === digests[0] && d.length === 64)
          ? 'yes'
          : `no: ${digests.join(', ')}`
      } catch (error) {
        out.memoryRecoveryError = error instanceof Error ? error.message : String(error)
      }
    }
  } finally {
    await cluster?.stop().catch(() => {})
    await redis?.stop().catch(() => {})
    killAll()
    process.off('exit', onExit)
  }
  out.loadAverage1mAtEnd = round(loadavg()[0]!)
  out.configuration = CONFIGURATION
  process.stdout.write(table(out))
  return out
}

/** The comparison at a glance (run.ts lists every figure after it). */
function table(out: Row): string {
  const cell = (v: number | string | undefined, width: number) => {
    const shown =
      typeof v === 'number' ? v.toLocaleString('en-US', { maximumFractionDigits: 2 }) : (v ?? '–')
    return shown.padStart(width)
  }
  const lines: string[] = []
  if (out.redisSetRps !== undefined) {
    lines.push(
      `${''.padEnd(14)}${['redis rps', 'p50 ms', 'p99 ms', 'dir a rps', 'p50 ms', 'p99 ms', 'dir 3× rps', 'p50 ms', 'p99 ms', 'rps ratio'].map((h) => h.padStart(11)).join('')}`,
    )
    for (const [label, key] of [
      ['SET c=1', 'SetC1'],
      ['SET', 'Set'],
      ['GET', 'Get'],
      ['SET -P 16', 'SetP16'],
      ['GET -P 16', 'GetP16'],
    ] as const) {
      const ratio = Number(out[`directory${key}Rps`]) / Number(out[`redis${key}Rps`])
      lines.push(
        label.padEnd(14) +
          [
            out[`redis${key}Rps`],
            out[`redis${key}P50Ms`],
            out[`redis${key}P99Ms`],
            out[`directory${key}Rps`],
            out[`directory${key}P50Ms`],
            out[`directory${key}P99Ms`],
            out[`directorySpread${key}Rps`],
            out[`directorySpread${key}P50Ms`],
            out[`directorySpread${key}P99Ms`],
            ratio.toPrecision(2),
          ]
            .map((v) => cell(v, 11))
            .join(''),
      )
    }
    const cpu = (k: string) => cell(out[`directory${k}CpuUsPerRequest`], 0)
    const redisCpu = (k: string) => cell(out[`redis${k}CpuUsPerRequest`], 0)
    lines.push(
      `CPU µs/request, the 3 replicas summed (redis-server): SET ${cpu('Set')} (${redisCpu('Set')}), ` +
        `GET ${cpu('Get')} (${redisCpu('Get')}), SET -P 16 ${cpu('SetP16')} (${redisCpu('SetP16')}), ` +
        `GET -P 16 ${cpu('GetP16')} (${redisCpu('GetP16')}); cores busy in SET ${cell(out.directorySetCpuCores, 0)}, ` +
        `SET -P 16 ${cell(out.directorySetP16CpuCores, 0)}, SET c=1 ${cell(out.directorySetC1CpuCores, 0)}, idle ${cell(out.directoryIdleCpuCores, 0)} of ${cell(out.cores, 0)}`,
    )
    for (const mix of ['90', '50'])
      lines.push(
        `mixed ${mix}% GET, 50 clients: redis ${cell(out[`mixedRead${mix}RedisOpsPerSecond`], 0)} ops/s, ` +
          `directory ${cell(out[`mixedRead${mix}DirectoryOpsPerSecond`], 0)} ops/s ` +
          `(GET p50/p99 ${cell(out[`mixedRead${mix}DirectoryGetP50Ms`], 0)}/${cell(out[`mixedRead${mix}DirectoryGetP99Ms`], 0)} ms, ` +
          `SET p50/p99 ${cell(out[`mixedRead${mix}DirectorySetP50Ms`], 0)}/${cell(out[`mixedRead${mix}DirectorySetP99Ms`], 0)} ms)`,
      )
    lines.push(
      `aims: ${out.aimsMet} (SET rps ratio ${cell(out.aimSetRpsRatio, 0)}, -P 16 ${cell(out.aimSetP16RpsRatio, 0)}, p50 ratio ${cell(out.aimSetP50Ratio, 0)})`,
    )
  }
  if (out.memoryRecoveryError !== undefined)
    lines.push(
      `memory and recovery: ${out.memoryRecoveryError}`,
      `  on the way (replica b): ${cell(out.directoryBytesPerKeyReplicaBDuringLoad, 0)}`,
      `  longest event-loop stall ${cell(out.loadMaxEventLoopStallMs, 0)} ms; then: ${cell(out.viewsAfterLoad, 0)}`,
    )
  if (out.keysLoaded !== undefined)
    lines.push(
      `memory, ${cell(out.keysLoaded, 0)} keys: directory ${cell(out.directoryRssBytesPerKey, 0)} B/key RSS (replica a), ${cell(out.directoryRssBytesPerKeyReplicaB, 0)} (b); ` +
        `LMDB ${cell(out.directoryLmdbBytesPerKey, 0)} B/key on disk; redis ${cell(out.redisRssBytesPerKey, 0)} B/key RSS; ` +
        `load ${cell(out.loadKeysPerSecond, 0)} keys/s, longest event-loop stall ${cell(out.loadMaxEventLoopStallMs, 0)} ms, ${cell(out.loadRetries, 0)} batches retried`,
      `recovery of b: from its storage ${cell(out.recoverFromStorageMs, 0)} ms (${cell(out.recoverFromStorageKeys, 0)} keys); ` +
        `wiped: ${cell(out.recoverWipedResult, 0)}`,
      `replicas agree at the end: ${cell(out.replicasAgreeAtEnd, 0)}`,
    )
  return `${lines.join('\n')}\n\n`
}
