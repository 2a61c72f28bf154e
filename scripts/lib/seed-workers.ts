/**
 * The worker pool both campaign commands share: seeds `from..to` split over `jobs` forked
 * copies of the calling script (each runs its share and sends one line per seed over IPC);
 * a line with problems is handed to `onFailure`. Resolves with the counts; rejects if a worker
 * exits abnormally.
 */
import { fork } from 'node:child_process'
import { availableParallelism } from 'node:os'

export interface SeedArgs {
  from: number
  to: number
  jobs: number
  /** The arguments that are not seed options, in order (the caller's own words). */
  readonly rest: string[]
}

/**
 * Parses `--seeds A..B`, `--seed N` and `--jobs J` (and skips a `--`); anything else goes to
 * `rest`. A malformed option calls `usage` (which exits).
 */
export function parseSeedArgs(
  argv: readonly string[],
  defaults: { readonly to: number },
  usage: (problem: string) => never,
): SeedArgs {
  const out: SeedArgs = {
    from: 1,
    to: defaults.to,
    jobs: Math.max(1, availableParallelism()),
    rest: [],
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === '--') continue
    if (arg === '--seeds') {
      const match = /^(\d+)\.\.(\d+)$/.exec(argv[++i] ?? '')
      if (match === null) usage('--seeds takes A..B')
      out.from = Number(match[1])
      out.to = Number(match[2])
    } else if (arg === '--seed') {
      out.from = out.to = Number(argv[++i])
      if (!Number.isSafeInteger(out.from)) usage('--seed takes an integer')
    } else if (arg === '--jobs') {
      out.jobs = Number(argv[++i])
      if (!Number.isSafeInteger(out.jobs) || out.jobs < 1) usage('--jobs takes an integer >= 1')
    } else out.rest.push(arg)
  }
  if (out.to < out.from) usage('--seeds A..B needs B >= A')
  return out
}

export interface SeedLine {
  readonly seed: number
  readonly problems: readonly string[]
}

/**
 * Counts the lines of a campaign run: prints a progress line every `progressEvery` seeds,
 * passes each line to `onLine`, and a failing one to `onFailure` (both runners below).
 */
function seedTally<L extends SeedLine>(options: {
  readonly onFailure: (line: L) => void
  readonly onLine?: (line: L) => void
  readonly progressEvery?: number
}) {
  const started = Date.now()
  let done = 0
  const totals = { passed: 0, failed: 0 }
  const add = (line: L) => {
    if (options.progressEvery !== undefined && ++done % options.progressEvery === 0)
      process.stdout.write(`… ${done} seeds (${Math.round((Date.now() - started) / 1000)} s)\n`)
    options.onLine?.(line)
    if (line.problems.length === 0) totals.passed++
    else {
      totals.failed++
      options.onFailure(line)
    }
  }
  return { add, totals }
}

export async function runSeedWorkers<L extends SeedLine>(options: {
  /** The script to fork (the caller's own file). */
  readonly script: string
  /** The worker's arguments for its share of the seeds. */
  readonly args: (from: number, to: number) => readonly string[]
  readonly from: number
  readonly to: number
  readonly jobs: number
  readonly onFailure: (line: L) => void
  /** Sees every line (passed or not), e.g. to total what the runs exercised. */
  readonly onLine?: (line: L) => void
  /** Print a progress line `… N seeds (T s)` every this many seeds (default: none). */
  readonly progressEvery?: number
}): Promise<{ passed: number; failed: number }> {
  const { from, to } = options
  const count = to - from + 1
  const jobs = Math.min(options.jobs, count)
  const per = Math.ceil(count / jobs)
  const tally = seedTally(options)
  const workers: Promise<void>[] = []
  for (let j = 0; j < jobs; j++) {
    const first = from + j * per
    const last = Math.min(to, first + per - 1)
    if (first > last) continue
    const child = fork(options.script, [...options.args(first, last)], {
      execArgv: process.execArgv,
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    })
    child.on('message', (line: L) => tally.add(line))
    workers.push(
      new Promise((resolve, reject) => {
        child.on('exit', (code) =>
          code === 0
            ? resolve()
            : reject(new Error(`worker ${first}..${last} exited with ${code}`)),
        )
      }),
    )
  }
  await Promise.all(workers)
  return { ...tally.totals }
}

/** What a queue worker sends its parent: `ready` once, then one `line` per seed it was given. */
type QueueMessage<L> =
  | { readonly kind: 'ready'; readonly hello: unknown }
  | { readonly kind: 'line'; readonly line: L }
/** What the parent sends a queue worker: the next seed, or none (the worker then exits). */
type QueueOrder = { readonly seed: number } | { readonly seed: null }

/**
 * Seeds handed out one at a time to `jobs` forked copies of the calling script, each asking
 * for the next when it has sent its line (`serveSeeds` is the worker's side): any list of
 * seeds, no share left idle behind a slow one, and an `AbortSignal` stops it between seeds
 * (every seed handed out still finishes and is reported). Resolves with the counts and the
 * seeds not run (an abort's); rejects if a worker exits abnormally.
 */
export async function runSeedQueue<L extends SeedLine>(options: {
  readonly script: string
  /** The worker's arguments (it must call `serveSeeds`). */
  readonly args: readonly string[]
  readonly seeds: readonly number[]
  readonly jobs: number
  /** Each worker's `hello` (what its `serveSeeds` setup returned), before its first seed. */
  readonly onReady?: (hello: unknown, worker: number) => void
  readonly onFailure: (line: L) => void
  readonly onLine?: (line: L) => void
  readonly progressEvery?: number
  readonly signal?: AbortSignal
}): Promise<{ passed: number; failed: number; left: number[] }> {
  const queue = [...options.seeds]
  let next = 0
  const tally = seedTally(options)
  const jobs = Math.max(1, Math.min(options.jobs, queue.length))
  if (queue.length === 0) return { ...tally.totals, left: [] }
  const workers: Promise<void>[] = []
  for (let j = 0; j < jobs; j++) {
    const child = fork(options.script, [...options.args], {
      execArgv: process.execArgv,
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    })
    const give = () => {
      const seed = options.signal?.aborted !== true && next < queue.length ? queue[next++]! : null
      child.send({ seed } satisfies QueueOrder)
    }
    child.on('message', (message: QueueMessage<L>) => {
      if (message.kind === 'ready') {
        options.onReady?.(message.hello, j)
        give()
        return
      }
      const line = message.line
      // Hand out the next seed first: the worker computes while the parent records.
      give()
      tally.add(line)
    })
    workers.push(
      new Promise((resolve, reject) => {
        child.on('exit', (code, signal) =>
          code === 0
            ? resolve()
            : reject(new Error(`worker ${j + 1} exited with ${code ?? signal}`)),
        )
      }),
    )
  }
  await Promise.all(workers)
  return { ...tally.totals, left: queue.slice(next) }
}

/**
 * The worker's side of `runSeedQueue`: `setup` once (its `hello` goes to the parent's
 * `onReady`), then `run` for each seed the parent sends, each line sent back, until the
 * parent has no more. A worker ignores SIGINT (a Ctrl-C reaches the whole process group): the
 * parent decides, and the seed under way finishes.
 */
export async function serveSeeds<L extends SeedLine>(
  setup: () => Promise<{ readonly hello?: unknown; readonly run: (seed: number) => Promise<L> }>,
): Promise<void> {
  process.on('SIGINT', () => {})
  const { hello, run } = await setup()
  const send = (message: QueueMessage<L>) =>
    new Promise<void>((resolve, reject) =>
      process.send!(message, (error: Error | null) => (error ? reject(error) : resolve())),
    )
  const orders: QueueOrder[] = []
  let wake: (() => void) | undefined
  process.on('message', (order: QueueOrder) => {
    orders.push(order)
    wake?.()
  })
  await send({ kind: 'ready', hello })
  for (;;) {
    while (orders.length === 0) await new Promise<void>((resolve) => (wake = resolve))
    const { seed } = orders.shift()!
    if (seed === null) break
    await send({ kind: 'line', line: await run(seed) })
  }
  process.disconnect()
}
