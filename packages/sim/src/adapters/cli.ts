#!/usr/bin/env node
import { resolve } from 'node:path'
/**
 * `consul-sim`: runs a scenario module over one seed or a range of seeds and prints one
 * summary line per seed. A failing seed also prints the one-line command that replays it.
 * Exit code: 0 when every seed passed, 1 when any failed, 2 on a usage error.
 *
 *   consul-sim --scenario ./my-scenario.ts --seeds 1..500 --nodes 5
 *
 * TypeScript scenario modules are loaded through `tsx` when it is installed.
 *
 * The CLI is the simulator's one contact with the real world (argv, stdout, exit codes, the
 * file system, wall time for `wall=`), so it lives under `src/adapters/`, the folder the
 * determinism lint rule exempts; it is still built to `dist/cli.js` (the package's bin).
 */
import { pathToFileURL } from 'node:url'
import { formatResult, runScenario, type Scenario } from '../scenario.js'

const usage = `usage: consul-sim --scenario <module> (--seed N | --seeds A..B) [--nodes K] [--json]

  --scenario <module>  a module whose default export (or export "scenario") is a Scenario
  --seed N             run one seed
  --seeds A..B         run seeds A to B inclusive
  --nodes K            node count (default: the scenario's, else 3)
  --json               print one JSON object per seed instead of a summary line
  --stop-on-failure    stop at the first failing seed`

interface Args {
  scenario: string
  from: number
  to: number
  nodes?: number
  json: boolean
  stopOnFailure: boolean
}

function fail(message: string): never {
  process.stderr.write(`consul-sim: ${message}\n\n${usage}\n`)
  process.exit(2)
}

function parseArgs(argv: readonly string[]): Args {
  let scenario: string | undefined
  let from: number | undefined
  let to: number | undefined
  let nodes: number | undefined
  let json = false
  let stopOnFailure = false
  const int = (text: string | undefined, what: string) => {
    if (text === undefined || !/^-?\d+$/.test(text))
      fail(`${what} must be an integer, got ${text ?? 'nothing'}`)
    return Number(text)
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    const value = () => argv[++i]
    switch (arg) {
      case '--':
        break
      case '--scenario':
        scenario = value()
        break
      case '--seed':
        from = to = int(value(), '--seed')
        break
      case '--seeds': {
        const text = value() ?? ''
        const match = /^(-?\d+)\.\.(-?\d+)$/.exec(text)
        if (match === null) fail(`--seeds takes A..B, got ${text}`)
        from = Number(match[1])
        to = Number(match[2])
        if (to < from) fail(`--seeds ${text}: B must be >= A`)
        break
      }
      case '--nodes':
        nodes = int(value(), '--nodes')
        if (nodes < 1) fail('--nodes must be >= 1')
        break
      case '--json':
        json = true
        break
      case '--stop-on-failure':
        stopOnFailure = true
        break
      case '--help':
      case '-h':
        process.stdout.write(`${usage}\n`)
        process.exit(0)
        break
      default:
        fail(`unknown argument ${arg}`)
    }
  }
  if (scenario === undefined) fail('--scenario is required')
  if (from === undefined || to === undefined) fail('--seed or --seeds is required')
  return { scenario, from, to, ...(nodes === undefined ? {} : { nodes }), json, stopOnFailure }
}

async function loadScenario(path: string): Promise<Scenario> {
  const absolute = resolve(path)
  let mod: Record<string, unknown>
  if (/\.[cm]?tsx?$/.test(absolute)) {
    let tsImport: (specifier: string, parent: string) => Promise<Record<string, unknown>>
    try {
      ;({ tsImport } = (await import('tsx/esm/api')) as unknown as { tsImport: typeof tsImport })
    } catch {
      fail(`${path} is TypeScript: install tsx (npm i -D tsx) or pass the built .js module`)
    }
    mod = await tsImport(pathToFileURL(absolute).href, import.meta.url)
  } else {
    mod = (await import(pathToFileURL(absolute).href)) as Record<string, unknown>
  }
  const candidate = (mod.default ?? mod.scenario) as Partial<Scenario> | undefined
  if (
    candidate === undefined ||
    typeof candidate.stack !== 'function' ||
    typeof candidate.name !== 'string'
  ) {
    fail(
      `${path} does not export a scenario (default export or "scenario" made with defineScenario)`,
    )
  }
  return candidate as Scenario
}

async function main(): Promise<void> {
  // `consul-sim … | head` closes the pipe early: stop quietly.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0)
    throw error
  })
  const args = parseArgs(process.argv.slice(2))
  const scenario = await loadScenario(args.scenario)
  let failed = 0
  let passed = 0
  for (let seed = args.from; seed <= args.to; seed++) {
    const started = performance.now()
    const result = await runScenario(scenario, {
      seed,
      ...(args.nodes === undefined ? {} : { nodes: args.nodes }),
    })
    const wall = performance.now() - started
    if (args.json)
      process.stdout.write(`${JSON.stringify({ ...result, wallMs: Math.round(wall) })}\n`)
    else process.stdout.write(`${formatResult(result, wall)}\n`)
    if (result.ok) passed++
    else {
      failed++
      process.stdout.write(
        `  replay: pnpm sim --scenario ${args.scenario} --seed ${seed} --nodes ${result.nodes}\n`,
      )
      if (args.stopOnFailure) break
    }
  }
  process.stdout.write(`${scenario.name}: ${passed} passed, ${failed} failed\n`)
  process.exitCode = failed > 0 ? 1 : 0
}

main().catch((error: unknown) => {
  process.stderr.write(
    `consul-sim: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  )
  process.exit(2)
})
