/**
 * `pnpm bench failover`: three replica processes on loopback UDP in the weak configuration
 * (Psync, Divider, Failure Detection, total order; `failover-node.ts`).
 *
 * - Failover, over `FAILOVER_TRIALS` trials (default 50): under a light load (300 commands/s
 *   over the group), one replica is killed with SIGKILL; each survivor reports when it
 *   suspected the dead one (its view changed) and when it next delivered a command (ordering
 *   resumed). A trial's failover is the later survivor's resumption − the kill; detection the
 *   later survivor's suspicion − the kill. Fresh processes and ports for every trial (a spare is
 *   started ahead, so no trial waits for a process to start).
 * - False suspicions at maximum load: three fresh replicas, each keeping 2,000 own commands in
 *   flight for `FAILOVER_LOAD_SECONDS` (default 10) — every suspicion is false (nobody died) —
 *   then the same with CPU hogs (one busy process per core) competing for the cores.
 *
 * Writes `bench/results/failover.json` with `suspectAfterMs`, `failoverP50Ms`,
 * `failoverP99Ms`, `trials`, `falseSuspicionsAtMaxLoad` and more; every run also measures the
 * raw `node:dgram` RTT as its baseline.
 */
import { type ChildProcess, fork, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import type { FailoverParentMessage } from './failover-node.js'
import { rawRtt } from './order.js'
import { freeUdpPorts } from './ports.js'

const SUSPECT_AFTER_MS = 150
const wall = () => performance.timeOrigin + performance.now()
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

interface Replica {
  readonly child: ChildProcess
  readonly inbox: { type: string; [k: string]: unknown }[]
  readonly waiters: (() => void)[]
}

function spawnReplica(): Replica {
  const child = fork(fileURLToPath(new URL('./failover-node.ts', import.meta.url)), [], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const r: Replica = { child, inbox: [], waiters: [] }
  child.on('message', (m) => {
    r.inbox.push(m as Replica['inbox'][number])
    for (const w of r.waiters.splice(0)) w()
  })
  child.on('exit', () => {
    for (const w of r.waiters.splice(0)) w()
  })
  return r
}

/** Takes the first message of `type` from the inbox, waiting up to `timeoutMs`. */
async function take(
  r: Replica,
  type: string,
  timeoutMs: number,
): Promise<Replica['inbox'][number] | undefined> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const error = r.inbox.find((m) => m.type === 'error')
    if (error !== undefined) throw new Error(`replica failed: ${String(error.error)}`)
    const at = r.inbox.findIndex((m) => m.type === type)
    if (at >= 0) return r.inbox.splice(at, 1)[0]
    const left = deadline - Date.now()
    if (left <= 0 || r.child.exitCode !== null || r.child.signalCode !== null) return undefined
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, left)
      r.waiters.push(() => {
        clearTimeout(t)
        resolve()
      })
    })
  }
}

const send = (r: Replica, m: FailoverParentMessage) => r.child.send(m)

async function startTrio(replicas: Replica[]): Promise<string[]> {
  const ports = await freeUdpPorts(3)
  const names = ['a', 'b', 'c']
  const peers = Object.fromEntries(names.map((n, i) => [n, { host: '127.0.0.1', port: ports[i]! }]))
  const keyHex = randomBytes(32).toString('hex')
  for (const [i, r] of replicas.entries())
    send(r, { type: 'setup', self: names[i]!, peers, keyHex, suspectAfterMs: SUSPECT_AFTER_MS })
  for (const r of replicas) {
    if ((await take(r, 'ready', 20_000)) === undefined) throw new Error('replica did not start')
  }
  return names
}

async function teardown(replicas: readonly Replica[]): Promise<void> {
  for (const r of replicas) send(r, { type: 'teardown' })
  for (const r of replicas) await take(r, 'done', 10_000)
  for (const r of replicas) r.inbox.length = 0
}

const percentile = (sorted: readonly number[], p: number) =>
  sorted.length === 0
    ? Number.NaN
    : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!
const round = (x: number) => Math.round(x * 10) / 10

export async function falseSuspicions(
  seconds: number,
  hogs: number,
): Promise<{ suspicions: number; cmdsPerSecond: number }> {
  const hogProcs = Array.from({ length: hogs }, () =>
    spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' }),
  )
  const trio = [spawnReplica(), spawnReplica(), spawnReplica()]
  try {
    for (const r of trio) await take(r, 'started', 20_000)
    await startTrio(trio)
    for (const r of trio) send(r, { type: 'window', window: 2_000 })
    await sleep(seconds * 1000)
    let delivered = 0
    for (const r of trio) send(r, { type: 'stop' })
    for (const r of trio) {
      const s = await take(r, 'stopped', 10_000)
      delivered = Math.max(delivered, Number(s?.delivered ?? 0))
    }
    const suspicions = trio.reduce(
      (n, r) => n + r.inbox.filter((m) => m.type === 'suspect').length,
      0,
    )
    await teardown(trio)
    return { suspicions, cmdsPerSecond: Math.round(delivered / seconds) }
  } finally {
    for (const r of trio) r.child.kill('SIGKILL')
    for (const h of hogProcs) h.kill('SIGKILL')
  }
}

/**
 * `pnpm soak`: false suspicions over `SOAK_SECONDS` (default 300) at maximum load, then the
 * same with a busy process per core — minutes long, outside `pnpm test`.
 */
export async function benchSoak(): Promise<Record<string, number | string>> {
  const seconds = Number(process.env.SOAK_SECONDS ?? 300)
  const calm = await falseSuspicions(seconds, 0)
  const hogged = await falseSuspicions(seconds, 2)
  return {
    suspectAfterMs: SUSPECT_AFTER_MS,
    seconds,
    falseSuspicionsAtMaxLoad: calm.suspicions,
    maxLoadCmdsPerSecond: calm.cmdsPerSecond,
    falseSuspicionsWithCpuHog: hogged.suspicions,
    cpuHogLoadCmdsPerSecond: hogged.cmdsPerSecond,
    configuration: 'weak (psync, divider, failure-detection, order-total)',
  }
}

export async function benchFailover(): Promise<Record<string, number | string>> {
  const trials = Number(process.env.FAILOVER_TRIALS ?? 50)
  const loadSeconds = Number(process.env.FAILOVER_LOAD_SECONDS ?? 10)
  // The raw baseline every benchmark here reports: node:dgram ping-pong with an echo process.
  const rttP50Ms = (await rawRtt(2_000, 200)).p50
  const failovers: number[] = []
  const detections: number[] = []
  let unresolved = 0
  let pool = [spawnReplica(), spawnReplica(), spawnReplica()]
  let spare = spawnReplica()
  for (const r of [...pool, spare]) await take(r, 'started', 20_000)
  for (let t = 0; t < trials; t++) {
    await startTrio(pool)
    for (const r of pool) send(r, { type: 'rate', perSecond: 100 })
    await sleep(300)
    const victimAt = t % 3
    const victim = pool[victimAt]!
    const survivors = pool.filter((_, i) => i !== victimAt)
    const killedAt = wall()
    victim.child.kill('SIGKILL')
    let failover = 0
    let detection = 0
    let ok = true
    for (const r of survivors) {
      const s = await take(r, 'suspect', 5_000)
      const a = await take(r, 'after', 5_000)
      if (s === undefined || a === undefined) {
        ok = false
        continue
      }
      detection = Math.max(detection, Number(s.at) - killedAt)
      failover = Math.max(failover, Number(a.at) - killedAt)
    }
    if (ok) {
      failovers.push(failover)
      detections.push(detection)
    } else unresolved++
    await teardown(survivors)
    // The spare takes the victim's place; a new spare starts meanwhile.
    pool = [...survivors, spare]
    spare = spawnReplica()
    await take(spare, 'started', 20_000)
  }
  for (const r of [...pool, spare]) r.child.kill('SIGKILL')
  failovers.sort((a, b) => a - b)
  detections.sort((a, b) => a - b)
  const calm = await falseSuspicions(loadSeconds, 0)
  const hogged = await falseSuspicions(loadSeconds, 2)
  return {
    suspectAfterMs: SUSPECT_AFTER_MS,
    trials: failovers.length,
    unresolvedTrials: unresolved,
    failoverP50Ms: round(percentile(failovers, 0.5)),
    failoverP99Ms: round(percentile(failovers, 0.99)),
    failoverMaxMs: round(failovers.at(-1) ?? Number.NaN),
    detectionP50Ms: round(percentile(detections, 0.5)),
    detectionP99Ms: round(percentile(detections, 0.99)),
    falseSuspicionsAtMaxLoad: calm.suspicions,
    maxLoadCmdsPerSecond: calm.cmdsPerSecond,
    falseSuspicionsWithCpuHog: hogged.suspicions,
    cpuHogLoadCmdsPerSecond: hogged.cmdsPerSecond,
    loadSeconds,
    rawRttP50Ms: round(rttP50Ms * 1000) / 1000,
    configuration: 'weak (psync, divider, failure-detection, order-total)',
  }
}
