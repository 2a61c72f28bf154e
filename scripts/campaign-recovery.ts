/**
 * `pnpm campaign:recovery [--seeds A..B | --seed N] [--jobs J] [--record [--rerun]] [--hashes]`
 * and `pnpm campaign:recovery --summary` — the Recovery campaign: for each seed, the whole
 * strong stack with Recovery on 3 or 5 simulated nodes, a lossy network, continuous load and a
 * schedule of crashes each followed by a restart (some with every checkpoint on the victim's
 * disk damaged: a state transfer; some long enough for the victim to be excluded: it rejoins
 * as a join), on some seeds a newcomer joining, checked for durability (every `'safe'`
 * acknowledgement applied everywhere), exactly-once application, equal states and liveness
 * (`packages/recovery/test/fixtures/scenario.ts`; a slice runs in `pnpm test`). Seeds (default
 * 1..10000) are handed out one at a time to J worker processes (default: the machine's cores).
 * A progress line every 500 seeds; each failing seed prints its problems and the command that
 * replays it; the last line is `N passed, N failed`.
 *
 * `--hashes` prints a line per seed: `seed N <trace hash> pass|FAIL <events> events` — the
 * same seed on the same code must print the same line (the simulator's trace hash covers every
 * event, datagram and traced record of the run).
 *
 * **Results across sessions** (`--record`, issue #12's 10,000 seeds are hours of work): each
 * seed's verdict and trace hash go to `bench/results/campaign-recovery.json` (`--results FILE`
 * for another), keyed by a hash of the code the seeds ran on — the sources of
 * `packages/recovery/src` and `test/fixtures`, the built `dist` of every workspace package the
 * scenario loads (Psync, the Divider, Failure Detection, Membership, total order, the
 * Dispatcher, Restart, the simulator, the x-kernel) and the versions of their other
 * dependencies and of Node (`scripts/lib/campaign-results.ts`). A recording run skips the seeds
 * the file already holds for this code, so `--seeds 1..10000 --record` picks up where the last
 * one stopped, chunks run in different sessions add up, and any change of that code starts the
 * file afresh (what it held is summed up under `earlier`). The file is written every 25 seeds
 * and when the run ends; Ctrl-C (or SIGTERM) stops handing out seeds, lets the ones under way
 * finish, records them and exits 130. `--rerun` runs recorded seeds again and checks that each
 * gives its recorded trace hash (a difference is reported and fails the run: non-determinism).
 * `--summary` prints what the file holds and whether it is for the current code, e.g.
 * `seeds 1..2000 all passed; 2003 seeds recorded (1..2000, 3289, 3486, 3521): …` — run it after
 * a build (`pnpm campaign:recovery --summary` builds first).
 */
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  type CodeKey,
  codeKey,
  loadResults,
  type RecordOutcome,
  recordResults,
  type SeedResult,
  seedsOf,
  summaryOf,
} from './lib/campaign-results.js'
import { parseSeedArgs, runSeedQueue, serveSeeds } from './lib/seed-workers.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
/** What the campaign runs from source; the workspace packages they import are hashed too. */
const SOURCES = ['packages/recovery/src', 'packages/recovery/test/fixtures']
const DEFAULT_RESULTS = 'bench/results/campaign-recovery.json'
const ABOUT =
  'Per-seed verdicts of `pnpm campaign:recovery --record` (a seed: its trace hash if it passed, { hash, problems } if not), for the code whose hash is `code`; see scripts/campaign-recovery.ts.'
const FLUSH_EVERY = 25

const USAGE =
  'usage: pnpm campaign:recovery [--seeds A..B | --seed N] [--jobs J] [--record [--rerun]] [--hashes] [--results FILE]\n' +
  '       pnpm campaign:recovery --summary [--results FILE]\n'

const HELP = `${USAGE}
  --seeds A..B, --seed N  the seeds (default 1..10000)
  --jobs J                worker processes (default: the machine's cores); seeds are handed
                          out one at a time
  --hashes                a line per seed: seed N <trace hash> pass|FAIL <events> events
  --record                add each seed's verdict and trace hash to the results file, keyed
                          by a hash of the code the seeds ran on (the scenario's sources and
                          the built dist of every workspace package it loads, the other
                          dependencies' versions, Node's): seeds the file already holds for
                          this code are skipped, so chunks run in different sessions add up;
                          a change of that code starts the file afresh (the old results are
                          summed up under "earlier"). Written every ${FLUSH_EVERY} seeds and at the end;
                          Ctrl-C lets the seeds under way finish and records them
  --rerun                 with --record: run recorded seeds again, fail if a trace hash differs
  --results FILE          the results file (default ${DEFAULT_RESULTS})
  --summary               what the results file holds, and whether it is for the current code
`

function usage(problem: string): never {
  process.stderr.write(`campaign:recovery: ${problem}\n${USAGE}`)
  process.exit(2)
}

function parse(argv: readonly string[]) {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(HELP)
    process.exit(0)
  }
  const { from, to, jobs, rest } = parseSeedArgs(argv, { to: 10_000 }, usage)
  const flags = { record: false, rerun: false, hashes: false, summary: false }
  let results = DEFAULT_RESULTS
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]!
    if (arg === '--record') flags.record = true
    else if (arg === '--rerun') flags.rerun = true
    else if (arg === '--hashes') flags.hashes = true
    else if (arg === '--summary') flags.summary = true
    else if (arg === '--results') {
      const file = rest[++i]
      if (file === undefined) usage('--results takes a file')
      results = file
    } else usage(`unknown argument ${arg}`)
  }
  if (flags.rerun && !flags.record) usage('--rerun goes with --record')
  return { from, to, jobs, ...flags, results: resolve(ROOT, results) }
}

interface Line {
  readonly seed: number
  readonly problems: readonly string[]
  readonly environment: string
  readonly restarts: number
  readonly damaged: number
  readonly transfers: number
  readonly long: number
  readonly joiner: boolean
  readonly configurations: number
  /** The simulation's trace hash and event count. */
  readonly hash: string
  readonly events: number
}

interface SimLike {
  traceHash(): string
  stats(): { readonly events: number }
}

async function worker(): Promise<void> {
  await serveSeeds<Line>(async () => {
    const { runRecoveryScenario } = await import('../packages/recovery/test/fixtures/scenario.js')
    // The scenario's own Simulation class (the same module: pnpm links resolve to this file),
    // watched for the run's trace hash: the scenario does not return it.
    const { Simulation } = await import('../packages/sim/dist/index.js')
    const proto = Simulation.prototype as unknown as { run(...args: unknown[]): unknown }
    const run = proto.run
    let last: SimLike | undefined
    proto.run = function (this: SimLike, ...args: unknown[]) {
      last = this
      return run.apply(this, args)
    }
    // Hashed after the imports: the key of the code this worker has loaded.
    const hello: CodeKey = codeKey(ROOT, SOURCES)
    return {
      hello,
      run: async (seed: number): Promise<Line> => {
        last = undefined
        const result = await runRecoveryScenario(seed)
        if (last === undefined) throw new Error(`seed ${seed}: no simulation ran`)
        const sim: SimLike = last
        return {
          seed,
          problems: result.problems,
          environment: result.environment,
          restarts: result.restarts,
          damaged: result.damaged,
          transfers: result.transfers,
          long: result.long,
          joiner: result.joiner,
          configurations: result.configurations,
          hash: sim.traceHash(),
          events: sim.stats().events,
        }
      },
    }
  })
}

function summary(path: string): void {
  const key = codeKey(ROOT, SOURCES)
  const file = loadResults(path)
  const shown = resolve(path).replace(ROOT, '')
  if (file === undefined) {
    process.stdout.write(`${shown}: no results yet (the current code is ${key.code})\n`)
    return
  }
  const same = file.code === key.code
  process.stdout.write(
    `${shown}: code ${file.code} (${file.node}; recorded at ${file.commits.join(', ')}) — ${
      same
        ? 'the current code'
        : `NOT the current code (${key.code}, ${key.commit}): a --record run starts afresh`
    }\n  ${summaryOf(seedsOf(file))}\n`,
  )
  for (const e of file.earlier)
    process.stdout.write(`  earlier, code ${e.code} (${e.commits.join(', ')}): ${e.summary}\n`)
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2)
  if (argv[0] === '--worker') return worker()
  const args = parse(argv)
  if (args.summary) return summary(args.results)
  const self = fileURLToPath(import.meta.url)
  const started = Date.now()
  const totals = { restarts: 0, damaged: 0, transfers: 0, long: 0, joiners: 0, moves: 0 }

  const wanted: number[] = []
  for (let s = args.from; s <= args.to; s++) wanted.push(s)
  let seeds = wanted
  // What a recording run already has for this code (checked again against the workers' key).
  let startKey: CodeKey | undefined
  let recorded = new Map<number, SeedResult>()
  if (args.record) {
    startKey = codeKey(ROOT, SOURCES)
    const file = loadResults(args.results)
    if (file?.code === startKey.code) recorded = seedsOf(file)
    if (!args.rerun) {
      seeds = wanted.filter((s) => !recorded.has(s))
      if (seeds.length < wanted.length)
        process.stdout.write(
          `recovery: ${wanted.length - seeds.length} of the seeds already recorded on this code (${startKey.code}), ${seeds.length} to run\n`,
        )
    }
  }

  let key: CodeKey | undefined
  let keyProblem: string | undefined
  const pending = new Map<number, SeedResult>()
  const conflicts: RecordOutcome['conflicts'][number][] = []
  const flush = () => {
    if (!args.record || pending.size === 0 || key === undefined || keyProblem !== undefined) return
    const outcome = recordResults(args.results, 'recovery', ABOUT, key, pending)
    conflicts.push(...outcome.conflicts)
    pending.clear()
  }
  const stop = new AbortController()
  let stopping = 0
  const interrupt = () => {
    // A second Ctrl-C exits at once; one signal can arrive twice (the group's and tsx's relay).
    if (stop.signal.aborted) {
      if (Date.now() - stopping > 2_000) process.exit(130)
      return
    }
    stopping = Date.now()
    process.stdout.write('recovery: stopping — the seeds under way finish and are recorded\n')
    stop.abort()
  }
  process.on('SIGINT', interrupt)
  process.on('SIGTERM', interrupt)

  const { passed, failed, left } = await runSeedQueue<Line>({
    script: self,
    args: ['--worker'],
    seeds,
    jobs: args.jobs,
    progressEvery: 500,
    signal: stop.signal,
    onReady: (hello) => {
      const k = hello as CodeKey
      if (key === undefined) key = k
      else if (key.code !== k.code) keyProblem = 'the workers loaded different code'
      if (startKey !== undefined && startKey.code !== k.code)
        keyProblem = `the code changed while the run started (${startKey.code} → ${k.code})`
    },
    onLine: (line) => {
      totals.restarts += line.restarts
      totals.damaged += line.damaged
      totals.transfers += line.transfers
      totals.long += line.long
      totals.joiners += line.joiner ? 1 : 0
      totals.moves += line.configurations
      if (args.hashes)
        process.stdout.write(
          `seed ${line.seed} ${line.hash} ${line.problems.length === 0 ? 'pass' : 'FAIL'} ${line.events} events\n`,
        )
      if (args.record) {
        const before = recorded.get(line.seed)
        if (before !== undefined && before.hash !== line.hash)
          conflicts.push({ seed: line.seed, recorded: before.hash, now: line.hash })
        pending.set(line.seed, { hash: line.hash, problems: line.problems })
        if (pending.size >= FLUSH_EVERY) flush()
      }
    },
    onFailure: (line) =>
      process.stdout.write(
        `recovery seed=${line.seed} FAIL (${line.environment})\n` +
          line.problems
            .slice(0, 12)
            .map((p) => `  ${p}\n`)
            .join('') +
          `  replay: pnpm campaign:recovery --seed ${line.seed}\n`,
      ),
  })
  flush()
  const ran = passed + failed
  process.stdout.write(
    `recovery: seeds ${args.from}..${args.to}${ran < wanted.length ? ` (${ran} run)` : ''} (${Math.round((Date.now() - started) / 1000)} s): ${totals.restarts} restarts, ${totals.damaged} with every checkpoint damaged, ${totals.transfers} state transfers, ${totals.long} downs past the timeout (excluded, rejoined), ${totals.joiners} newcomers, ${totals.moves} configuration changes\n`,
  )
  if (left.length > 0) process.stdout.write(`recovery: stopped, ${left.length} seeds not run\n`)
  if (args.record) {
    if (keyProblem !== undefined)
      process.stdout.write(`recovery: NOT recorded — ${keyProblem}; run again\n`)
    else if (key !== undefined || seeds.length === 0) summary(args.results)
  }
  // A seed on the same code with another trace hash: the run is not deterministic.
  const seen = new Set<number>()
  for (const c of conflicts) {
    if (seen.has(c.seed)) continue
    seen.add(c.seed)
    process.stdout.write(
      `recovery seed=${c.seed} NON-DETERMINISTIC: trace hash ${c.now}, recorded ${c.recorded} on the same code\n`,
    )
  }
  process.stdout.write(`${passed} passed, ${failed} failed\n`)
  process.exitCode = stop.signal.aborted ? 130 : failed > 0 || seen.size > 0 ? 1 : 0
}

await main()
