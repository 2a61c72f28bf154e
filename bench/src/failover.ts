/**
 * `pnpm bench failover`: three replica processes on loopback UDP (`failover-node.ts`), in the
 * weak configuration (Psync, Divider, Failure Detection, total order) and in the strong one
 * (the same with Membership between Failure Detection and the Order). `FAILOVER_STACK` picks
 * `weak`, `strong` or `both` (the default).
 *
 * - Failover, over `FAILOVER_TRIALS` trials (default 50): under a light load (300 commands/s
 *   over the group), one replica is killed with SIGKILL; each survivor reports when its view
 *   changed — weak: it suspected the dead one (masked out here); strong: it installed the
 *   agreed view without it (`MEMBERSHIP.onViewChange`) — and when it next delivered a command
 *   (ordering resumed). A trial's failover is the later survivor's resumption − the kill;
 *   weak detection the later survivor's suspicion − the kill; strong detection the *first*
 *   suspicion (the other survivor may learn of the failure from the decision before its own
 *   Failure Detection fires, and then never suspects) and the view change the later
 *   survivor's view − the kill. Fresh processes and ports for every trial (a spare is started
 *   ahead, so no trial waits for a process to start).
 * - False suspicions at maximum load: three fresh replicas, each keeping 2,000 own commands in
 *   flight for `FAILOVER_LOAD_SECONDS` (default 10) — every suspicion is false (nobody died) —
 *   then the same with CPU hogs (one busy process per core) competing for the cores. Strong:
 *   also the agreed view changes (each one a false exclusion: the highest view id any replica
 *   installed) and the submits refused outside the primary (an excluded replica rejects its
 *   pending ones too).
 *
 * Writes `bench/results/failover.json`: the weak results at the top level (`suspectAfterMs`,
 * `failoverP50Ms`, `failoverP99Ms`, `trials`, `falseSuspicionsAtMaxLoad` and more), the strong
 * ones under `strong` (the same keys and the view-change times). A run of one stack keeps the
 * other's results from the file as they were (`weakMeasuredAt`, `strong.measuredAt` say when).
 * Every run also measures the raw `node:dgram` RTT as its baseline.
 */
import { type ChildProcess, fork, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { FailoverParentMessage, FailoverStack } from './failover-node.js'
import { rawRtt } from './order.js'
import { freeUdpPorts } from './ports.js'

const SUSPECT_AFTER_MS = 150
const CONFIGURATION: Record<FailoverStack, string> = {
  weak: 'weak (psync, divider, failure-detection, order-total)',
  strong: 'strong (psync, divider, failure-detection, membership, order-total)',
}
const resultsFile = fileURLToPath(new URL('../results/failover.json', import.meta.url))
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

async function startTrio(replicas: Replica[], stack: FailoverStack): Promise<string[]> {
  const ports = await freeUdpPorts(3)
  const names = ['a', 'b', 'c']
  const peers = Object.fromEntries(names.map((n, i) => [n, { host: '127.0.0.1', port: ports[i]! }]))
  const keyHex = randomBytes(32).toString('hex')
  for (const [i, r] of replicas.entries())
    send(r, {
      type: 'setup',
      self: names[i]!,
      peers,
      keyHex,
      suspectAfterMs: SUSPECT_AFTER_MS,
      stack,
    })
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
  stack: FailoverStack = 'weak',
): Promise<{ suspicions: number; viewChanges: number; rejected: number; cmdsPerSecond: number }> {
  const hogProcs = Array.from({ length: hogs }, () =>
    spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' }),
  )
  const trio = [spawnReplica(), spawnReplica(), spawnReplica()]
  try {
    for (const r of trio) await take(r, 'started', 20_000)
    await startTrio(trio, stack)
    for (const r of trio) send(r, { type: 'window', window: 2_000 })
    await sleep(seconds * 1000)
    let delivered = 0
    let rejected = 0
    for (const r of trio) send(r, { type: 'stop' })
    for (const r of trio) {
      const s = await take(r, 'stopped', 10_000)
      delivered = Math.max(delivered, Number(s?.delivered ?? 0))
      rejected += Number(s?.rejected ?? 0)
    }
    const suspicions = trio.reduce(
      (n, r) => n + r.inbox.filter((m) => m.type === 'suspect').length,
      0,
    )
    // Agreed changes, not installations: one exclusion is a view at each of the three.
    const viewChanges = Math.max(
      0,
      ...trio.flatMap((r) => r.inbox.filter((m) => m.type === 'view').map((m) => Number(m.id))),
    )
    await teardown(trio)
    return { suspicions, viewChanges, rejected, cmdsPerSecond: Math.round(delivered / seconds) }
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

/** The trials of one stack: failover, detection and (strong) view-change times, in ms. */
async function failoverTrials(
  stack: FailoverStack,
  trials: number,
): Promise<{ failovers: number[]; detections: number[]; views: number[]; unresolved: number }> {
  const failovers: number[] = []
  const detections: number[] = []
  const views: number[] = []
  let unresolved = 0
  let pool = [spawnReplica(), spawnReplica(), spawnReplica()]
  let spare = spawnReplica()
  for (const r of [...pool, spare]) await take(r, 'started', 20_000)
  for (let t = 0; t < trials; t++) {
    await startTrio(pool, stack)
    for (const r of pool) send(r, { type: 'rate', perSecond: 100 })
    await sleep(300)
    const victimAt = t % 3
    const victim = pool[victimAt]!
    const survivors = pool.filter((_, i) => i !== victimAt)
    const killedAt = wall()
    victim.child.kill('SIGKILL')
    let failover = 0
    let detection = stack === 'weak' ? 0 : Number.POSITIVE_INFINITY
    let view = 0
    let ok = true
    for (const r of survivors) {
      if (stack === 'weak') {
        const s = await take(r, 'suspect', 5_000)
        const a = await take(r, 'after', 5_000)
        if (s === undefined || a === undefined) {
          ok = false
          continue
        }
        detection = Math.max(detection, Number(s.at) - killedAt)
        failover = Math.max(failover, Number(a.at) - killedAt)
      } else {
        const v = await take(r, 'view', 5_000)
        const a = await take(r, 'after', 5_000)
        if (v === undefined || a === undefined || v.kind !== 'failure') {
          ok = false
          continue
        }
        // Its own suspicion came before the view, if it came at all.
        const s = await take(r, 'suspect', 0)
        if (s !== undefined) detection = Math.min(detection, Number(s.at) - killedAt)
        view = Math.max(view, Number(v.at) - killedAt)
        failover = Math.max(failover, Number(a.at) - killedAt)
      }
    }
    if (ok) {
      failovers.push(failover)
      if (Number.isFinite(detection)) detections.push(detection)
      if (stack === 'strong') views.push(view)
    } else unresolved++
    await teardown(survivors)
    // The spare takes the victim's place; a new spare starts meanwhile.
    pool = [...survivors, spare]
    spare = spawnReplica()
    await take(spare, 'started', 20_000)
  }
  for (const r of [...pool, spare]) r.child.kill('SIGKILL')
  for (const xs of [failovers, detections, views]) xs.sort((a, b) => a - b)
  return { failovers, detections, views, unresolved }
}

async function measure(
  stack: FailoverStack,
  trials: number,
  loadSeconds: number,
  rttP50Ms: number,
): Promise<Record<string, number | string>> {
  const { failovers, detections, views, unresolved } = await failoverTrials(stack, trials)
  const calm = await falseSuspicions(loadSeconds, 0, stack)
  const hogged = await falseSuspicions(loadSeconds, 2, stack)
  return {
    suspectAfterMs: SUSPECT_AFTER_MS,
    trials: failovers.length,
    unresolvedTrials: unresolved,
    failoverP50Ms: round(percentile(failovers, 0.5)),
    failoverP99Ms: round(percentile(failovers, 0.99)),
    failoverMaxMs: round(failovers.at(-1) ?? Number.NaN),
    ...(stack === 'strong'
      ? {
          viewChangeP50Ms: round(percentile(views, 0.5)),
          viewChangeP99Ms: round(percentile(views, 0.99)),
        }
      : {}),
    detectionP50Ms: round(percentile(detections, 0.5)),
    detectionP99Ms: round(percentile(detections, 0.99)),
    falseSuspicionsAtMaxLoad: calm.suspicions,
    ...(stack === 'strong'
      ? { falseViewChangesAtMaxLoad: calm.viewChanges, refusedAtMaxLoad: calm.rejected }
      : {}),
    maxLoadCmdsPerSecond: calm.cmdsPerSecond,
    falseSuspicionsWithCpuHog: hogged.suspicions,
    ...(stack === 'strong'
      ? { falseViewChangesWithCpuHog: hogged.viewChanges, refusedWithCpuHog: hogged.rejected }
      : {}),
    cpuHogLoadCmdsPerSecond: hogged.cmdsPerSecond,
    loadSeconds,
    rawRttP50Ms: Math.round(rttP50Ms * 10_000) / 10_000,
    configuration: CONFIGURATION[stack],
  }
}

function stacksToRun(): FailoverStack[] {
  const chosen = process.env.FAILOVER_STACK ?? 'both'
  if (chosen === 'both') return ['weak', 'strong']
  if (chosen === 'weak' || chosen === 'strong') return [chosen]
  throw new Error(`FAILOVER_STACK must be weak, strong or both, got ${chosen}`)
}

/** The results already in the file, for the stack this run does not measure. */
function previousResults(): Record<string, unknown> {
  if (!existsSync(resultsFile)) return {}
  try {
    return JSON.parse(readFileSync(resultsFile, 'utf8')) as Record<string, unknown>
  } catch {
    return {}
  }
}

/**
 * The strong results as one value of run.ts's flat table: written to the JSON file as an
 * object, printed in the table as a one-line summary (its non-enumerable `toString`).
 */
function nested(result: Record<string, unknown>): string {
  const summary = () =>
    `p50 ${String(result.failoverP50Ms)} ms, p99 ${String(result.failoverP99Ms)} ms over ` +
    `${String(result.trials)} trials (view p50 ${String(result.viewChangeP50Ms)} ms), ` +
    `${String(result.falseSuspicionsAtMaxLoad)} false suspicions / ` +
    `${String(result.falseViewChangesAtMaxLoad)} false view changes at max load ` +
    `(${String(result.maxLoadCmdsPerSecond)} cmds/s)`
  Object.defineProperty(result, 'toString', { value: summary, enumerable: false })
  // run.ts's `Bench` type is a flat record of numbers and strings; this value is an object
  // that prints as a string there, and JSON.stringify writes it as an object.
  return result as unknown as string
}

export async function benchFailover(): Promise<Record<string, number | string>> {
  const trials = Number(process.env.FAILOVER_TRIALS ?? 50)
  const loadSeconds = Number(process.env.FAILOVER_LOAD_SECONDS ?? 10)
  const stacks = stacksToRun()
  // The raw baseline every benchmark here reports: node:dgram ping-pong with an echo process.
  const rttP50Ms = (await rawRtt(2_000, 200)).p50
  const previous = previousResults()
  let weak: Record<string, number | string>
  if (stacks.includes('weak')) weak = await measure('weak', trials, loadSeconds, rttP50Ms)
  else {
    // Kept as measured; run.ts stamps the file's `measuredAt` and `node` anew, so the weak
    // results' own date moves to `weakMeasuredAt` (already there after an earlier such run).
    weak = {}
    for (const [key, value] of Object.entries(previous))
      if ((typeof value === 'number' || typeof value === 'string') && key !== 'node')
        weak[key] = value
    weak.weakMeasuredAt = weak.weakMeasuredAt ?? weak.measuredAt ?? 'unknown'
    delete weak.measuredAt
  }
  let strong: Record<string, unknown> | undefined
  if (stacks.includes('strong'))
    strong = {
      ...(await measure('strong', trials, loadSeconds, rttP50Ms)),
      measuredAt: new Date().toISOString(),
    }
  else if (typeof previous.strong === 'object' && previous.strong !== null)
    strong = previous.strong as Record<string, unknown>
  return { ...weak, ...(strong === undefined ? {} : { strong: nested(strong) }) }
}
