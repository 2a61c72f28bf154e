/**
 * One replica process of the Order benchmark (see order.ts). It lives for the whole run and
 * takes its instructions over IPC, one phase at a time:
 *
 * - `setup`: a fresh host — `psync({ logEveryMs: 0, retainWaves })`, `divider()` and `totalOrder({ ackDelayMs: 0 })` or
 *   `semanticOrder({ classOf })` — on `udp(…)` (with the group key and the phase's
 *   `maxDatagram`) at the ports the parent allocated, storage in memory or LMDB, and the benchmark group opened;
 * - `go`: submits 100-byte commands, either keeping a window of un-delivered own commands
 *   (throughput) or at a fixed rate (latency), and reports deliveries;
 * - `teardown`: stops the host (frees the port, closes the store); `exit`: ends the process.
 *
 * A command carries its class (byte 0), its origin's index (byte 1), the origin's sequence
 * number (bytes 2–5, big-endian) and its submit time (bytes 6–13, a float64 in the machine's
 * byte order, `performance.timeOrigin + performance.now()`: one clock for every process on the
 * machine), so every replica can report when it delivered which command. Writing and reading
 * them allocates nothing: the harness should not compete with the replicas for the CPU.
 */
import { writeFileSync } from 'node:fs'
import { Session } from 'node:inspector/promises'
import { join } from 'node:path'
import { cpuUsage } from 'node:process'
import { divider } from '@consul/divider'
import { semanticOrder } from '@consul/order-semantic'
import { totalOrder } from '@consul/order-total'
import { psync } from '@consul/psync'
import { udp } from '@consul/transport-udp'
import {
  type Clock,
  createLogger,
  type HostStats,
  memoryStorage,
  ORDER,
  type OrderControl,
  type OrderedCommand,
  type StableStorage,
  stack,
} from '@consul/xkernel'

const COMMAND_BYTES = 100

export interface SetupMessage {
  readonly type: 'setup'
  readonly self: string
  readonly peers: Record<string, { host: string; port: number }>
  readonly keyHex: string
  readonly order: 'total' | 'semantic'
  readonly storage: 'memory' | 'lmdb'
  /** The transport's `maxDatagram` (every replica of a phase uses the same). */
  readonly maxDatagram: number
  /** Psync's `retainWaves`: the log and graph stay bounded, as checkpointing would keep them. */
  readonly retainWaves: number
  /** The LMDB directory, for `storage: 'lmdb'`. */
  readonly dir?: string
}

export interface GoMessage {
  readonly type: 'go'
  /** `window`: keep this many own commands un-delivered; `rate`: submit this many per second. */
  readonly workload:
    | { readonly kind: 'window'; readonly window: number }
    | { readonly kind: 'rate'; readonly perSecond: number }
  /** Submitting stops after this long. */
  readonly durationMs: number
  /** Deliveries are counted from here to `durationMs` (the throughput window). */
  readonly warmupMs: number
  /** After submitting stops, wait this long before reporting (so in-flight commands land). */
  readonly drainMs: number
  /** Report every delivery (origin, seq, submit time, delivery time). */
  readonly record: boolean
  /** Share of commands of class 0 (the commuting class); the rest spread over 1..classes. */
  readonly commuteShare: number
  readonly classes: number
  /** Names the CPU profile of the window (written only with `ORDER_BENCH_CPU_PROF=<dir>`). */
  readonly label: string
}

export type ParentMessage =
  | SetupMessage
  | GoMessage
  | { readonly type: 'teardown' }
  | { readonly type: 'exit' }

export interface GoResult {
  readonly type: 'result'
  /** Commands delivered here (anyone's) between `warmupMs` and `durationMs`. */
  readonly deliveredInWindow: number
  /** The real length of that window, in ms. */
  readonly windowMs: number
  /** CPU time (user + system) of this process over the window, in µs. */
  readonly cpuMicros: number
  /** Event-loop utilization over the window (0–1: the share of time not waiting for I/O). */
  readonly eventLoopUtilization: number
  readonly submitted: number
  readonly delivered: number
  /** Own commands still un-delivered when the report was made. */
  readonly outstanding: number
  /** The host's counters at the end of the phase. */
  readonly stats: HostStats
  /** With `record`: one entry per delivered command. */
  readonly records?: {
    readonly origin: Uint8Array
    readonly seq: Uint32Array
    readonly submittedAt: Float64Array
    readonly deliveredAt: Float64Array
  }
}

const logger = createLogger({ level: 'error' })

/**
 * Diagnostic, off by default (`ORDER_BENCH_TURN_TIMERS=<ms>`): a clock whose timers of at most
 * that delay run at the end of the current event-loop turn (`setImmediate`) instead of on
 * `setTimeout`, which Node never fires sooner than 1 ms. It shows what the protocols' short
 * timers (order's flush at 0 ms and ack at `ackDelayMs`, Psync's `logEveryMs` commit) cost in
 * latency.
 */
function turnClock(): Clock | undefined {
  const limit = process.env.ORDER_BENCH_TURN_TIMERS
  if (limit === undefined || limit === '') return undefined
  const turnMs = Number(limit)
  return {
    now: () => performance.now(),
    setTimer(delayMs, callback) {
      if (!(delayMs > turnMs)) {
        const handle = setImmediate(callback)
        return { cancel: () => clearImmediate(handle) }
      }
      const handle = setTimeout(callback, delayMs)
      return { cancel: () => clearTimeout(handle) }
    },
  }
}
const timeOrigin = performance.timeOrigin
const now = () => timeOrigin + performance.now()
/** Moves a float64 in and out of command bytes without a DataView per command. */
const stamp = new Float64Array(1)
const stampBytes = new Uint8Array(stamp.buffer)
const noop = () => {}

interface Replica {
  readonly host: { stop(): Promise<void>; stats(): HostStats }
  readonly order: OrderControl
  readonly selfIndex: number
  readonly self: string
}

let replica: Replica | undefined

async function setup(message: SetupMessage): Promise<void> {
  const members = Object.keys(message.peers)
  const key = Buffer.from(message.keyHex, 'hex')
  const transport = await udp({
    self: message.self,
    peers: message.peers,
    port: message.peers[message.self]!.port,
    host: '127.0.0.1',
    key,
    groupId: 'order-bench',
    maxDatagram: message.maxDatagram,
    logger,
  })
  let storage: StableStorage
  if (message.storage === 'lmdb') {
    const { lmdbStorage } = await import('@consul/storage-lmdb')
    storage = await lmdbStorage(message.dir!)
  } else storage = memoryStorage()
  const clock = turnClock()
  const order =
    message.order === 'total'
      ? totalOrder({ ackDelayMs: 0 })
      : semanticOrder({ ackDelayMs: 0, classOf: (command: Uint8Array) => command[0] ?? 0 })
  // Zero delays mean "at the end of this turn": group commit, flush and acknowledgement happen
  // once per event-loop turn, batching whatever arrived in it, with no millisecond timers.
  const host = await stack()
    .use(psync({ logEveryMs: 0, retainWaves: message.retainWaves }))
    .use(divider())
    .use(order)
    .start({ transport, storage, logger, ...(clock === undefined ? {} : { clock }) })
  const group = await host.open({ port: 'order-bench', members })
  replica = {
    host,
    order: group.get(ORDER),
    selfIndex: members.indexOf(message.self),
    self: message.self,
  }
}

/** Grows a typed array by doubling. */
function grow<T extends Float64Array | Uint32Array | Uint8Array>(
  array: T,
  make: (n: number) => T,
): T {
  const bigger = make(array.length * 2)
  bigger.set(array)
  return bigger
}

async function go(message: GoMessage): Promise<GoResult> {
  const { order, selfIndex, self, host } = replica!
  let submitted = 0
  let delivered = 0
  let outstanding = 0
  let submitting = true
  // Recorded deliveries, sized for the expected count so they rarely grow.
  let n = 0
  const expected =
    message.workload.kind === 'rate'
      ? (message.workload.perSecond * 3 * (message.durationMs + message.drainMs)) / 1000
      : 0
  let origin = new Uint8Array(message.record ? Math.max(65_536, Math.ceil(expected * 1.25)) : 0)
  let seq = new Uint32Array(origin.length)
  let submittedAt = new Float64Array(origin.length)
  let deliveredAt = new Float64Array(origin.length)

  const unsubscribe = order.onDeliver((c: OrderedCommand) => {
    delivered++
    if (c.sender === self) outstanding--
    if (message.record) {
      if (n === origin.length) {
        origin = grow(origin, (k) => new Uint8Array(k))
        seq = grow(seq, (k) => new Uint32Array(k))
        submittedAt = grow(submittedAt, (k) => new Float64Array(k))
        deliveredAt = grow(deliveredAt, (k) => new Float64Array(k))
      }
      const bytes = c.command
      origin[n] = bytes[1]!
      seq[n] = ((bytes[2]! << 24) | (bytes[3]! << 16) | (bytes[4]! << 8) | bytes[5]!) >>> 0
      for (let k = 0; k < 8; k++) stampBytes[k] = bytes[6 + k]!
      submittedAt[n] = stamp[0]!
      deliveredAt[n] = now()
      n++
    }
    if (message.workload.kind === 'window' && c.sender === self) scheduleTopUp()
  })

  // Deterministic class mix: a command is of class 0 with probability `commuteShare`.
  const classOf = (k: number): number => {
    const u = (Math.imul(k + 1, 0x9e3779b1) >>> 0) / 2 ** 32
    return u < message.commuteShare ? 0 : 1 + (k % Math.max(1, message.classes))
  }
  const submitOne = () => {
    // From Node's buffer pool, as encoders such as msgpackr hand them out: a `new
    // Uint8Array(100)` would cost an off-heap allocation (≈ 0.8 µs) per command.
    const command = Buffer.allocUnsafe(COMMAND_BYTES)
    command[0] = classOf(submitted)
    command[1] = selfIndex
    command[2] = submitted >>> 24
    command[3] = submitted >>> 16
    command[4] = submitted >>> 8
    command[5] = submitted
    stamp[0] = now()
    command.set(stampBytes, 6)
    command.fill(0, 14)
    submitted++
    outstanding++
    order.submit(command).catch(noop) // rejected only when the group closes at teardown
  }

  let topUpScheduled = false
  const window = message.workload.kind === 'window' ? message.workload.window : 0
  const topUp = () => {
    topUpScheduled = false
    while (submitting && outstanding < window) submitOne()
  }
  function scheduleTopUp(): void {
    if (topUpScheduled || !submitting) return
    topUpScheduled = true
    setImmediate(topUp)
  }

  const started = performance.now()
  let ticker: NodeJS.Timeout | undefined
  if (message.workload.kind === 'window') topUp()
  else {
    const perMs = message.workload.perSecond / 1000
    const tick = () => {
      const due = Math.floor((performance.now() - started) * perMs)
      while (submitting && submitted < due) submitOne()
      if (submitting) ticker = setTimeout(tick, 1)
    }
    tick()
  }

  // The throughput window: from warmupMs to durationMs.
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)))
  await sleep(message.warmupMs)
  const profiler = await startProfile()
  const windowStart = performance.now()
  const deliveredAtStart = delivered
  const cpu = cpuUsage()
  const elu = performance.eventLoopUtilization()
  await sleep(started + message.durationMs - performance.now())
  const windowMs = performance.now() - windowStart
  const deliveredInWindow = delivered - deliveredAtStart
  const used = cpuUsage(cpu)
  const eventLoopUtilization = performance.eventLoopUtilization(elu).utilization
  await profiler?.(`${message.label}-${self}`)
  submitting = false
  if (ticker !== undefined) clearTimeout(ticker)
  await sleep(message.drainMs)
  unsubscribe()
  return {
    type: 'result',
    deliveredInWindow,
    windowMs,
    cpuMicros: used.user + used.system,
    eventLoopUtilization,
    submitted,
    delivered,
    outstanding,
    stats: host.stats(),
    ...(message.record
      ? {
          records: {
            origin: origin.slice(0, n),
            seq: seq.slice(0, n),
            submittedAt: submittedAt.slice(0, n),
            deliveredAt: deliveredAt.slice(0, n),
          },
        }
      : {}),
  }
}

/**
 * With `ORDER_BENCH_CPU_PROF=<dir>`: profiles this process over the measured window only
 * (not start-up, not the other phases); the returned function stops and writes the profile.
 */
async function startProfile(): Promise<((name: string) => Promise<void>) | undefined> {
  const dir = process.env.ORDER_BENCH_CPU_PROF
  if (!dir) return undefined
  const session = new Session()
  session.connect()
  await session.post('Profiler.enable')
  await session.post('Profiler.setSamplingInterval', { interval: 250 })
  await session.post('Profiler.start')
  return async (name) => {
    const { profile } = await session.post('Profiler.stop')
    writeFileSync(join(dir, `${name}.cpuprofile`), JSON.stringify(profile))
    session.disconnect()
  }
}

process.on('message', (raw) => {
  const message = raw as ParentMessage
  const reply = (value: object) => process.send?.(value)
  const fail = (error: unknown) =>
    reply({
      type: 'error',
      error: error instanceof Error ? (error.stack ?? error.message) : String(error),
    })
  switch (message.type) {
    case 'setup':
      setup(message).then(() => reply({ type: 'ready' }), fail)
      return
    case 'go':
      go(message).then(reply, fail)
      return
    case 'teardown': {
      const stopping = replica?.host.stop() ?? Promise.resolve()
      replica = undefined
      stopping.then(() => reply({ type: 'done' }), fail)
      return
    }
    case 'exit':
      process.exit(0)
  }
})
process.send?.({ type: 'started' })
