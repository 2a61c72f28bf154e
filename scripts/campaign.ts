/**
 * `pnpm campaign [order …] [--seeds A..B | --seed N] [--jobs J]` — the Order conformance
 * campaign: every scenario kind of `@consul/testkit/order` (crashes and torn writes, calm
 * faults, crashes right after own deliveries, an agreed exclusion, checkpoint restore, a
 * restart after pruning without a checkpoint), Psync pruning its log in every run, over a long
 * range of seeds (default 1..2000) for each Order (default: all three). `pnpm test` runs a
 * bounded slice of the same scenarios; this runs the rest.
 *
 * Seeds are split over J worker processes (default: the machine's cores). Each failing seed
 * prints its problems and the command that replays it alone; the last line is
 * `N passed, N failed`. Exit code 1 when any seed failed.
 */
import { fileURLToPath } from 'node:url'
import type { OrderRun, OrderSetup } from '@consul/testkit/order'
import { parseSeedArgs, runSeedWorkers } from './lib/seed-workers.js'

const ORDERS = ['order-total', 'order-semantic', 'order-lamport'] as const
type OrderName = (typeof ORDERS)[number]

async function setupOf(name: OrderName): Promise<OrderSetup> {
  switch (name) {
    case 'order-total':
      return (await import('../packages/order-total/test/fixtures/setup.js')).setup
    case 'order-semantic':
      return (await import('../packages/order-semantic/test/fixtures/setup.js')).setup
    case 'order-lamport':
      return (await import('../examples/order-lamport/test/fixtures/setup.js')).setup
  }
}

interface Args {
  orders: OrderName[]
  from: number
  to: number
  jobs: number
}

function parse(argv: readonly string[]): Args {
  const { from, to, jobs, rest } = parseSeedArgs(argv, { to: 2000 }, usage)
  const orders: OrderName[] = []
  for (const arg of rest)
    if ((ORDERS as readonly string[]).includes(arg)) orders.push(arg as OrderName)
    else usage(`unknown argument ${arg}`)
  return { orders: orders.length > 0 ? orders : [...ORDERS], from, to, jobs }
}

function usage(problem: string): never {
  process.stderr.write(
    `campaign: ${problem}\nusage: pnpm campaign [${ORDERS.join('|')} …] [--seeds A..B | --seed N] [--jobs J]\n`,
  )
  process.exit(2)
}

interface Line {
  readonly order: OrderName
  readonly seed: number
  readonly kind: string
  readonly pruning: string
  readonly problems: readonly string[]
  readonly environment: string
}

/** A worker: runs its share of seeds for one Order and sends one line per seed. */
async function worker(order: OrderName, from: number, to: number): Promise<void> {
  const { runOrderCampaign } = await import('@consul/testkit/order')
  const setup = await setupOf(order)
  await runOrderCampaign(setup, from, to, (run: OrderRun) => {
    const line: Line = {
      order,
      seed: run.seed,
      kind: run.kind,
      pruning: run.pruning,
      problems: run.problems,
      environment: run.environment,
    }
    process.send?.(line)
  })
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2)
  if (argv[0] === '--worker') {
    await worker(argv[1] as OrderName, Number(argv[2]), Number(argv[3]))
    return
  }
  const args = parse(argv)
  const self = fileURLToPath(import.meta.url)
  let passed = 0
  let failed = 0
  const started = Date.now()
  for (const order of args.orders) {
    const { passed: orderPassed, failed: orderFailed } = await runSeedWorkers<Line>({
      script: self,
      args: (from, to) => ['--worker', order, String(from), String(to)],
      from: args.from,
      to: args.to,
      jobs: args.jobs,
      onFailure: (line) =>
        process.stdout.write(
          `${order} seed=${line.seed} FAIL (${line.kind}, pruning ${line.pruning}; ${line.environment})\n` +
            line.problems.map((p) => `  ${p}\n`).join('') +
            `  replay: pnpm campaign ${order} --seed ${line.seed}\n`,
        ),
    })
    process.stdout.write(
      `${order}: seeds ${args.from}..${args.to}: ${orderPassed} passed, ${orderFailed} failed (${Math.round((Date.now() - started) / 1000)} s)\n`,
    )
    passed += orderPassed
    failed += orderFailed
  }
  process.stdout.write(`${passed} passed, ${failed} failed\n`)
  process.exitCode = failed > 0 ? 1 : 0
}

await main()
