/**
 * `pnpm campaign:recovery [--seeds A..B | --seed N] [--jobs J]` — the Recovery campaign: for
 * each seed, the whole strong stack with Recovery on 3 or 5 simulated nodes, a lossy network,
 * continuous load and a schedule of crashes each followed by a restart (some with every
 * checkpoint on the victim's disk damaged: a state transfer; some long enough for the victim
 * to be excluded: it rejoins as a join), on some seeds a newcomer joining, checked for
 * durability (every `'safe'` acknowledgement applied everywhere), exactly-once application,
 * equal states and liveness (`packages/recovery/test/fixtures/scenario.ts`; a slice runs in
 * `pnpm test`). Seeds (default 1..10000) are split over J worker processes (default: the
 * machine's cores). A progress line every 500 seeds; each failing seed prints its problems and
 * the command that replays it; the last line is `N passed, N failed`.
 */
import { fileURLToPath } from 'node:url'
import { parseSeedArgs, runSeedWorkers } from './lib/seed-workers.js'

function usage(problem: string): never {
  process.stderr.write(
    `campaign:recovery: ${problem}\nusage: pnpm campaign:recovery [--seeds A..B | --seed N] [--jobs J]\n`,
  )
  process.exit(2)
}

function parse(argv: readonly string[]) {
  const { from, to, jobs, rest } = parseSeedArgs(argv, { to: 10_000 }, usage)
  if (rest.length > 0) usage(`unknown argument ${rest[0]}`)
  return { from, to, jobs }
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
}

async function worker(from: number, to: number): Promise<void> {
  const { runRecoveryScenario } = await import('../packages/recovery/test/fixtures/scenario.js')
  for (let seed = from; seed <= to; seed++) {
    const run = await runRecoveryScenario(seed)
    const line: Line = {
      seed,
      problems: run.problems,
      environment: run.environment,
      restarts: run.restarts,
      damaged: run.damaged,
      transfers: run.transfers,
      long: run.long,
      joiner: run.joiner,
      configurations: run.configurations,
    }
    process.send?.(line)
  }
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2)
  if (argv[0] === '--worker') {
    await worker(Number(argv[1]), Number(argv[2]))
    return
  }
  const args = parse(argv)
  const self = fileURLToPath(import.meta.url)
  const started = Date.now()
  const totals = { restarts: 0, damaged: 0, transfers: 0, long: 0, joiners: 0, moves: 0 }
  const { passed, failed } = await runSeedWorkers<Line>({
    script: self,
    args: (from, to) => ['--worker', String(from), String(to)],
    from: args.from,
    to: args.to,
    jobs: args.jobs,
    progressEvery: 500,
    onLine: (line) => {
      totals.restarts += line.restarts
      totals.damaged += line.damaged
      totals.transfers += line.transfers
      totals.long += line.long
      totals.joiners += line.joiner ? 1 : 0
      totals.moves += line.configurations
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
  process.stdout.write(
    `recovery: seeds ${args.from}..${args.to} (${Math.round((Date.now() - started) / 1000)} s): ${totals.restarts} restarts, ${totals.damaged} with every checkpoint damaged, ${totals.transfers} state transfers, ${totals.long} downs past the timeout (excluded, rejoined), ${totals.joiners} newcomers, ${totals.moves} configuration changes\n`,
  )
  process.stdout.write(`${passed} passed, ${failed} failed\n`)
  process.exitCode = failed > 0 ? 1 : 0
}

await main()
