/**
 * Order: totally ordered commands over real UDP between replica processes on loopback, next
 * to a raw-UDP baseline measured in the same run.
 *
 * - Baseline: `rawPps64` (datagrams/s at 64 bytes between two processes, raw-udp.ts), the
 *   ping-pong RTT of plain `node:dgram` between two processes (`rawRttP50Ms`, `rawRttP99Ms`),
 *   and the same to two echo processes at once, until both answered (`rawRtt2…`: the floor
 *   of a 3-member round with no protocol at all).
 * - Throughput: 3 and 5 replica processes, each `psync({ logEveryMs: 0, retainWaves: 64 })` +
 *   `totalOrder({ ackDelayMs: 0 })` on `udp(…)` with a group key (HMAC on every datagram) and
 *   `maxDatagram` 65,507 (the loopback path's limit; see MAX_DATAGRAM), all submitting
 *   100-byte commands as fast as they can with a window of un-delivered own commands; the
 *   rate is the commands totally ordered per second at the slowest replica.
 *   `total3Mtu1400CmdsPerSecond` is the 3-replica run with the default `maxDatagram` 1,400.
 *   Storage is in memory — this measures the protocols and the network, not the disk —
 *   except `total3DurableCmdsPerSecond`, the same 3-replica run on LMDB (`lmdbStorage` in a
 *   temporary directory, synced every commit).
 * - Latency: 3 replicas each submitting at a fixed rate, half the measured 3-replica
 *   throughput in total; a command's latency runs from its submit at the origin to its
 *   delivery at the last replica, on one clock for all processes (`performance.timeOrigin +
 *   performance.now()`). The `curve` phase repeats it at 1, 10 and 25 % (`…_<n>pct` keys),
 *   with a canary process (loop-canary.ts) that does nothing but report how late its own
 *   event loop runs meanwhile (`idleProcessLoopLate…`): the machine's share of any tail.
 * - Semantic vs total (the shape of the SRDS 1989 comparison), over UDP (not the simulator):
 *   3 replicas, the share of commuting (class 0) commands going 0 → 100 %, the others spread
 *   over classes 1..3; response time p50/p99 at the submitter (submit → delivered there) for
 *   `semanticOrder({ classOf })` and `totalOrder()` on the same workload, plus the p50 of
 *   delivery at the other replicas and the share order-semantic delivered early. At a fixed
 *   light load (600 commands/s: replicas idle between commands, so waves wait for
 *   acknowledgements) and again at a quarter of the measured capacity (`…Loaded…` keys).
 *
 * The replica processes (order-node.ts) live for the whole run and get a fresh host on fresh
 * ports for every phase. Knobs for investigating (the defaults are the benchmark):
 * `ORDER_BENCH_ONLY=total3,latency` runs only some phases (`rtt`, `raw`, `total3`, `total5`,
 * `mtu1400`, `durable3`, `latency`, `curve`, `semantic`); `ORDER_BENCH_CPU_PROF=<dir>` writes
 * a CPU profile of each replica over each phase's measured window
 * (`<phase>-<replica>.cpuprofile`); `ORDER_BENCH_WINDOW=<n>` changes the throughput window;
 * `ORDER_BENCH_MAX_DATAGRAM=<bytes>` the replicas' `maxDatagram`;
 * `ORDER_BENCH_NODE_ARGS='<flags>'` passes node flags to them (e.g. `--trace-gc`);
 * `ORDER_BENCH_LOAD=<cmds/s>` stands in for the measured 3-replica throughput the latency
 * phases derive their load from (and skips measuring it unless `total3` is named); `ORDER_BENCH_TURN_TIMERS=<ms>` runs the
 * replicas on a clock whose timers of at most that delay fire at the end of the turn
 * (order-node.ts).
 */
import { type ChildProcess, fork } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createSocket } from 'node:dgram'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { CanaryMessage, CanaryReport } from './loop-canary.js'
import type { GoMessage, GoResult, ParentMessage, SetupMessage } from './order-node.js'
import { freeUdpPorts } from './ports.js'
import { rawUdpBaseline } from './raw-udp.js'

/**
 * Own commands each replica keeps un-delivered in the throughput runs. Tuned over 1,000–4,000
 * with 64 KiB datagrams: batches are full (≈ 250 of `maxBatch` 256) throughout; 1,000 leaves
 * the replicas waiting on each other's waves (≈ 395 k/s), 2,000 gives ≈ 465 k/s and 4,000
 * ≈ 510 k/s (≈ 1.15 µs of CPU per command per replica; 2 cores are then busy).
 */
const WINDOW = Number(process.env.ORDER_BENCH_WINDOW ?? 4_000)
/**
 * The replicas' `maxDatagram`: the loopback path takes 64 KiB datagrams, so a Psync message
 * of a full batch (≈ 25 KB) is one datagram, as on one host or a LAN with large frames
 * (JGroups bundles up to 64 KB by default too). `total3Mtu1400…` repeats the 3-replica run
 * with the default 1,400 (an Ethernet path), where that message is 18 fragments.
 */
const MAX_DATAGRAM = Number(process.env.ORDER_BENCH_MAX_DATAGRAM ?? 65_507)
const ETHERNET_MAX_DATAGRAM = 1_400
/**
 * Psync's `retainWaves` in every replica. An application checkpoints (and so lets Psync prune
 * its log and graph); without that, the in-memory log of a throughput run grows by ≈ 50 MB/s
 * per replica and the allocator and GC, not the protocols, set the pace (≈ 510 k/s instead of
 * ≈ 600 k/s here).
 */
const RETAIN_WAVES = 64
/** Extra node flags for the replica processes (`ORDER_BENCH_NODE_ARGS='--trace-gc'`). */
const NODE_ARGS = process.env.ORDER_BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? []
const THROUGHPUT = { durationMs: 3_000, warmupMs: 1_000, drainMs: 0 }
const LATENCY = { durationMs: 3_500, warmupMs: 500, drainMs: 500 }
/** Semantic vs total: a fixed light load (commands/s, all replicas together) … */
const SWEEP_LIGHT_CMDS_PER_SECOND = 600
/** … and a moderate one, as a share of the measured 3-replica throughput. */
const SWEEP_LOADED_SHARE = 0.25
const SWEEP = { durationMs: 2_500, warmupMs: 500, drainMs: 400 }
const SHARES = [0, 0.25, 0.5, 0.75, 1] as const
/** Latency against load: these percentages of the measured 3-replica throughput (50 % is `latency`). */
const CURVE_PERCENTS = [1, 10, 25] as const
const NON_COMMUTING_CLASSES = 3

const children = new Set<ChildProcess>()

function killAll(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }
  children.clear()
}

function spawn(script: string): ChildProcess {
  const child = fork(fileURLToPath(new URL(script, import.meta.url)), [], {
    execArgv: ['--import', 'tsx', ...NODE_ARGS],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    serialization: 'advanced', // typed arrays of delivery records go over IPC as they are
  })
  children.add(child)
  child.once('exit', () => children.delete(child))
  return child
}

/** The child's next IPC message (an `{ type: 'error' }` one rejects). */
function nextMessage<T>(child: ChildProcess, timeoutMs: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const cleanup = () => {
      child.off('message', onMessage)
      child.off('exit', onExit)
      clearTimeout(timer)
    }
    const onMessage = (m: unknown) => {
      cleanup()
      const message = m as { type?: string; error?: string }
      if (message.type === 'error') reject(new Error(`replica process failed: ${message.error}`))
      else resolve(m as T)
    }
    const onExit = (code: number | null, signal: string | null) => {
      cleanup()
      reject(new Error(`replica process exited (${code ?? signal})`))
    }
    const timer = setTimeout(() => {
      cleanup()
      reject(new Error(`replica process did not answer within ${timeoutMs} ms`))
    }, timeoutMs)
    child.on('message', onMessage)
    child.on('exit', onExit)
  })
}

function request<T>(
  child: ChildProcess,
  message: ParentMessage | CanaryMessage,
  timeoutMs = 30_000,
): Promise<T> {
  const answer = nextMessage<T>(child, timeoutMs)
  child.send(message)
  return answer
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!
}

const round = (x: number, digits = 3) => {
  const f = 10 ** digits
  return Math.round(x * f) / f
}

// ---- raw baselines ------------------------------------------------------------------------

/** Ping-pong over loopback with plain node:dgram: one datagram out, wait for the echo, repeat. */
export async function rawRtt(
  pings: number,
  warmup: number,
  echoes = 1,
): Promise<{ p50: number; p99: number }> {
  const children = Array.from({ length: echoes }, () => spawn('./rtt-echo.ts'))
  const ports = await Promise.all(
    children.map(async (child) => (await nextMessage<{ port: number }>(child, 30_000)).port),
  )
  const socket = createSocket('udp4')
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()))
  const payload = Buffer.alloc(64, 7)
  const rtts = new Float64Array(pings)
  try {
    for (let i = 0; i < warmup + pings; i++) {
      const sentAt = performance.now()
      await new Promise<void>((resolve, reject) => {
        let waiting = echoes
        const timer = setTimeout(() => {
          socket.removeListener('message', onEcho)
          reject(new Error('raw ping-pong: echo lost'))
        }, 1_000)
        const onEcho = () => {
          if (--waiting > 0) return
          socket.removeListener('message', onEcho)
          clearTimeout(timer)
          resolve()
        }
        socket.on('message', onEcho)
        for (const port of ports) socket.send(payload, port, '127.0.0.1')
      })
      if (i >= warmup) rtts[i - warmup] = performance.now() - sentAt
    }
  } finally {
    socket.close()
    for (const child of children) child.send('stop')
  }
  rtts.sort()
  return { p50: percentile(rtts, 0.5), p99: percentile(rtts, 0.99) }
}

// ---- replica phases -----------------------------------------------------------------------

interface Phase {
  /** Names the phase's CPU profiles. */
  readonly label: string
  readonly order: 'total' | 'semantic'
  readonly storage: 'memory' | 'lmdb'
  /** Default: MAX_DATAGRAM. */
  readonly maxDatagram?: number
  readonly go: Omit<GoMessage, 'type' | 'label'>
}

/** One phase on the first `n` replica processes: fresh hosts on fresh ports, run, tear down. */
async function runPhase(
  pool: readonly ChildProcess[],
  n: number,
  phase: Phase,
): Promise<GoResult[]> {
  const replicas = pool.slice(0, n)
  const ids = replicas.map((_, i) => `r${i + 1}`)
  const ports = await freeUdpPorts(n)
  const peers = Object.fromEntries(ids.map((id, i) => [id, { host: '127.0.0.1', port: ports[i]! }]))
  const keyHex = randomBytes(32).toString('hex')
  const dir =
    phase.storage === 'lmdb' ? mkdtempSync(join(tmpdir(), 'consul-order-bench-')) : undefined
  try {
    await Promise.all(
      replicas.map((child, i) => {
        const setup: SetupMessage = {
          type: 'setup',
          self: ids[i]!,
          peers,
          keyHex,
          order: phase.order,
          storage: phase.storage,
          maxDatagram: phase.maxDatagram ?? MAX_DATAGRAM,
          retainWaves: RETAIN_WAVES,
          ...(dir === undefined ? {} : { dir: join(dir, ids[i]!) }),
        }
        return request(child, setup)
      }),
    )
    const timeout = phase.go.durationMs + phase.go.drainMs + 30_000
    const results = await Promise.all(
      replicas.map((child) =>
        request<GoResult>(child, { type: 'go', label: phase.label, ...phase.go }, timeout),
      ),
    )
    await Promise.all(replicas.map((child) => request(child, { type: 'teardown' })))
    return results
  } finally {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
  }
}

const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0)
const counter = (r: GoResult, layer: string, name: string) => r.stats[layer]?.[name] ?? 0
const orderLayer = (r: GoResult) => (r.stats['order-total'] ? 'order-total' : 'order-semantic')

interface Throughput {
  /** Commands ordered per second at the slowest replica. */
  readonly cmdsPerSecond: number
  readonly cpuMicrosPerCmd: number
  readonly cmdsPerBatch: number
  readonly datagramsPerCmd: number
  readonly acksPerBatch: number
  /** The busiest replica's event-loop utilization over the window. */
  readonly eventLoopUtilization: number
}

function throughput(results: readonly GoResult[]): Throughput {
  const rates = results.map((r) => r.deliveredInWindow / (r.windowMs / 1000))
  const submitted = sum(results.map((r) => counter(r, orderLayer(r), 'submitted')))
  const batches = sum(results.map((r) => counter(r, orderLayer(r), 'batches')))
  const acks = sum(results.map((r) => counter(r, orderLayer(r), 'acks')))
  const datagrams = sum(results.map((r) => counter(r, 'transport', 'sent.datagrams')))
  return {
    cmdsPerSecond: Math.round(Math.min(...rates)),
    cpuMicrosPerCmd: round(
      sum(results.map((r) => r.cpuMicros / Math.max(1, r.deliveredInWindow))) / results.length,
      2,
    ),
    cmdsPerBatch: round(submitted / Math.max(1, batches), 1),
    datagramsPerCmd: round(datagrams / Math.max(1, submitted), 3),
    acksPerBatch: round(acks / Math.max(1, batches), 3),
    eventLoopUtilization: round(Math.max(...results.map((r) => r.eventLoopUtilization)), 2),
  }
}

interface Latencies {
  /** Submit at the origin → delivered at the last replica. */
  readonly everywhere: Float64Array
  /** Submit → delivered at the submitter. */
  readonly own: Float64Array
  /** Submit → delivered at each other replica. */
  readonly remote: Float64Array
  /** Commands of the window not delivered at every replica by the report. */
  readonly missing: number
}

/** Latencies of the commands submitted after the warm-up, from every replica's records. */
function latencies(results: readonly GoResult[], warmupMs: number): Latencies {
  let first = Number.POSITIVE_INFINITY
  for (const r of results) for (const t of r.records!.submittedAt) if (t < first) first = t
  const from = first + warmupMs
  const byCommand = new Map<number, { submittedAt: number; last: number; seen: number }>()
  const own: number[] = []
  const remote: number[] = []
  results.forEach((r, replica) => {
    const { origin, seq, submittedAt, deliveredAt } = r.records!
    for (let i = 0; i < origin.length; i++) {
      if (submittedAt[i]! < from) continue
      const latency = deliveredAt[i]! - submittedAt[i]!
      if (origin[i] === replica) own.push(latency)
      else remote.push(latency)
      const key = origin[i]! * 2 ** 32 + seq[i]!
      const entry = byCommand.get(key)
      if (entry === undefined)
        byCommand.set(key, { submittedAt: submittedAt[i]!, last: deliveredAt[i]!, seen: 1 })
      else {
        entry.seen++
        if (deliveredAt[i]! > entry.last) entry.last = deliveredAt[i]!
      }
    }
  })
  const everywhere: number[] = []
  let missing = 0
  for (const entry of byCommand.values()) {
    if (entry.seen === results.length) everywhere.push(entry.last - entry.submittedAt)
    else missing++
  }
  const sorted = (xs: number[]) => Float64Array.from(xs).sort()
  return { everywhere: sorted(everywhere), own: sorted(own), remote: sorted(remote), missing }
}

// ---- the benchmark --------------------------------------------------------------------------

export async function benchOrder(): Promise<Record<string, number>> {
  const only = process.env.ORDER_BENCH_ONLY?.split(',').map((s) => s.trim())
  const want = (phase: string) => only === undefined || only.includes(phase)
  const out: Record<string, number> = {}
  const onExit = () => killAll()
  process.once('exit', onExit)
  try {
    // The replica processes first, so their start-up (tsx compiling) is over before anything
    // is measured.
    const pool = Array.from({ length: 5 }, () => spawn('./order-node.ts'))
    await Promise.all(pool.map((child) => nextMessage(child, 60_000)))

    if (want('rtt')) {
      const rtt = await rawRtt(5_000, 500)
      out.rawRttP50Ms = round(rtt.p50)
      out.rawRttP99Ms = round(rtt.p99)
      // The floor of a 3-member agreement round: one datagram to each of 2 echoes, until
      // both answers are back (what a command's acknowledgements cost, without any protocol).
      const two = await rawRtt(5_000, 500, 2)
      out.rawRtt2P50Ms = round(two.p50)
      out.rawRtt2P99Ms = round(two.p99)
    }
    if (want('raw')) out.rawPps64 = (await rawUdpBaseline(64, 2_000)).pps
    out.maxDatagram = MAX_DATAGRAM

    const window = { kind: 'window', window: WINDOW } as const
    const throughputGo = {
      ...THROUGHPUT,
      workload: window,
      record: false,
      commuteShare: 0,
      classes: 1,
    }
    /** A throughput phase of `total` order on the first `n` replicas. */
    const throughputRun = async (
      n: number,
      label: string,
      phase: Partial<Pick<Phase, 'storage' | 'maxDatagram'>> = {},
    ) =>
      throughput(
        await runPhase(pool, n, {
          label,
          order: 'total',
          storage: 'memory',
          go: throughputGo,
          ...phase,
        }),
      )
    let total3: number | undefined
    if (
      want('total3') ||
      ((want('latency') || want('curve') || want('semantic')) && !process.env.ORDER_BENCH_LOAD)
    ) {
      const t = await throughputRun(3, 'total3')
      total3 = t.cmdsPerSecond
      out.total3CmdsPerSecond = t.cmdsPerSecond
      out.total3CpuMicrosPerCmd = t.cpuMicrosPerCmd
      out.total3CmdsPerBatch = t.cmdsPerBatch
      out.total3DatagramsPerCmd = t.datagramsPerCmd
      out.total3EventLoopUtilization = t.eventLoopUtilization
    }
    if (want('total5')) {
      const t = await throughputRun(5, 'total5')
      out.total5CmdsPerSecond = t.cmdsPerSecond
      out.total5CpuMicrosPerCmd = t.cpuMicrosPerCmd
      out.total5CmdsPerBatch = t.cmdsPerBatch
    }
    if (want('mtu1400')) {
      const t = await throughputRun(3, 'mtu1400', { maxDatagram: ETHERNET_MAX_DATAGRAM })
      out.total3Mtu1400CmdsPerSecond = t.cmdsPerSecond
      out.total3Mtu1400CpuMicrosPerCmd = t.cpuMicrosPerCmd
      out.total3Mtu1400DatagramsPerCmd = t.datagramsPerCmd
    }
    if (want('durable3')) {
      const t = await throughputRun(3, 'durable3', { storage: 'lmdb' })
      out.total3DurableCmdsPerSecond = t.cmdsPerSecond
      out.total3DurableCmdsPerBatch = t.cmdsPerBatch
    }
    const load = total3 ?? Number(process.env.ORDER_BENCH_LOAD)
    const latencyAt = async (share: number, label: string) => {
      const perSecond = (load * share) / 3
      const results = await runPhase(pool, 3, {
        label,
        order: 'total',
        storage: 'memory',
        go: {
          ...LATENCY,
          workload: { kind: 'rate', perSecond },
          record: true,
          commuteShare: 0,
          classes: 1,
        },
      })
      return { perSecond, l: latencies(results, LATENCY.warmupMs), t: throughput(results) }
    }
    if (want('latency')) {
      const { perSecond, l, t } = await latencyAt(0.5, 'latency')
      out.total3LatencyLoadCmdsPerSecond = Math.round(perSecond * 3)
      out.total3LatencyP50Ms = round(percentile(l.everywhere, 0.5))
      out.total3LatencyP99Ms = round(percentile(l.everywhere, 0.99))
      out.total3LatencyOwnP50Ms = round(percentile(l.own, 0.5))
      out.total3LatencyCmdsPerBatch = t.cmdsPerBatch
      out.total3LatencyAcksPerBatch = t.acksPerBatch
      out.total3LatencyEventLoopUtilization = t.eventLoopUtilization
      out.total3LatencyCpuMicrosPerCmd = t.cpuMicrosPerCmd
      out.total3LatencyUndelivered = l.missing
    }
    if (want('curve')) {
      // The same measurement at lighter loads: where the latency comes from (the
      // acknowledgement round at light load, CPU queueing as the 2 cores fill up). A canary
      // process that does nothing reports how late its event loop runs meanwhile: what the
      // machine alone adds to any process's latency.
      const canary = spawn('./loop-canary.ts')
      await nextMessage(canary, 60_000)
      for (const pct of CURVE_PERCENTS) {
        await request(canary, { type: 'start' })
        const { l, t } = await latencyAt(pct / 100, `curve-${pct}`)
        const lag = await request<CanaryReport>(canary, { type: 'report' })
        out[`total3LatencyP50Ms_${pct}pct`] = round(percentile(l.everywhere, 0.5))
        out[`total3LatencyP99Ms_${pct}pct`] = round(percentile(l.everywhere, 0.99))
        out[`total3LatencyCpuMicrosPerCmd_${pct}pct`] = t.cpuMicrosPerCmd
        out[`total3LatencyUndelivered_${pct}pct`] = l.missing
        out[`idleProcessLoopLateP99Ms_${pct}pct`] = round(lag.p99, 2)
        out[`idleProcessLoopLateMaxMs_${pct}pct`] = round(lag.max, 2)
      }
      canary.send({ type: 'exit' } satisfies CanaryMessage)
    }
    if (want('semantic')) {
      // Two loads: a fixed light one, where replicas are idle between commands and waves wait
      // for acknowledgements (the regime of the paper's comparison), and a quarter of the
      // measured capacity, where every replica always has commands of its own to send.
      const sweeps = [
        { tag: '', perSecond: SWEEP_LIGHT_CMDS_PER_SECOND / 3 },
        { tag: 'Loaded', perSecond: (load * SWEEP_LOADED_SHARE) / 3 },
      ]
      out.sweepLoadCmdsPerSecond = SWEEP_LIGHT_CMDS_PER_SECOND
      out.sweepLoadedLoadCmdsPerSecond = Math.round(sweeps[1]!.perSecond * 3)
      for (const { tag, perSecond } of sweeps) {
        for (const share of SHARES) {
          for (const order of ['semantic', 'total'] as const) {
            const pct = Math.round(share * 100)
            const results = await runPhase(pool, 3, {
              label: `${order}${tag}-${pct}`,
              order,
              storage: 'memory',
              go: {
                ...SWEEP,
                workload: { kind: 'rate', perSecond },
                record: true,
                commuteShare: share,
                classes: NON_COMMUTING_CLASSES,
              },
            })
            const l = latencies(results, SWEEP.warmupMs)
            out[`${order}${tag}P50Ms_${pct}`] = round(percentile(l.own, 0.5))
            if (tag === '') out[`${order}P99Ms_${pct}`] = round(percentile(l.own, 0.99))
            out[`${order}${tag}RemoteP50Ms_${pct}`] = round(percentile(l.remote, 0.5))
            if (order === 'semantic') {
              // The share of deliveries order-semantic made early (rank 0, before the wave).
              const early = sum(results.map((r) => counter(r, 'order-semantic', 'deliveredEarly')))
              const all = sum(results.map((r) => counter(r, 'order-semantic', 'delivered')))
              out[`semantic${tag}EarlyShare_${pct}`] = round(early / Math.max(1, all), 3)
            }
          }
        }
      }
    }
    // A normal exit for every replica; the `finally` kills whatever does not go.
    await Promise.all(
      pool.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve()
            const timer = setTimeout(() => {
              child.kill('SIGKILL')
              resolve()
            }, 3_000)
            child.once('exit', () => {
              clearTimeout(timer)
              resolve()
            })
            child.send({ type: 'exit' } satisfies ParentMessage)
          }),
      ),
    )
    return out
  } finally {
    killAll()
    process.off('exit', onExit)
  }
}
