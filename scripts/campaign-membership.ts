/**
 * `pnpm campaign:membership [total|semantic …] [--seeds A..B | --seed N] [--jobs J]` — the
 * Membership conformance campaign: every aspect of `@consul/testkit/membership` (crashes of
 * 1..f of n, concurrent crashes, a false suspicion, a partition and its heal, a one-way and a
 * flapping link, a stalled member, a random swarm of faults) over a long range of seeds
 * (default 1..10000), the whole strong stack — Psync, the Divider, Failure Detection,
 * Membership — under each Order (default: total). Seeds are split over J worker processes
 * (default: the machine's cores). Each failing seed prints its problems and the command that
 * replays it alone; a progress line every 500 seeds; the last line is `N passed, N failed`. Exit code 1 when any seed failed.
 */
import { fileURLToPath } from 'node:url'
import type { MembershipRun, MembershipSetup } from '@consul/testkit/membership'
import { parseSeedArgs, runSeedWorkers } from './lib/seed-workers.js'

const ORDERS = ['total', 'semantic'] as const
type OrderName = (typeof ORDERS)[number]

async function setupOf(name: OrderName): Promise<MembershipSetup> {
  const fixtures = await import('../packages/membership/test/fixtures/setup.js')
  return name === 'total' ? fixtures.strongTotal : fixtures.strongSemantic
}

function usage(problem: string): never {
  process.stderr.write(
    `campaign:membership: ${problem}\nusage: pnpm campaign:membership [${ORDERS.join('|')} …] [--seeds A..B | --seed N] [--jobs J]\n`,
  )
  process.exit(2)
}

function parse(argv: readonly string[]) {
  const { from, to, jobs, rest } = parseSeedArgs(argv, { to: 10_000 }, usage)
  const orders: OrderName[] = []
  for (const arg of rest)
    if ((ORDERS as readonly string[]).includes(arg)) orders.push(arg as OrderName)
    else usage(`unknown argument ${arg}`)
  return { orders: orders.length > 0 ? orders : (['total'] as OrderName[]), from, to, jobs }
}

interface Line {
  readonly seed: number
  readonly aspect: string
  readonly nodes: number
  readonly problems: readonly string[]
  readonly environment: string
}

async function worker(order: OrderName, from: number, to: number): Promise<void> {
  const { runMembershipCampaign } = await import('@consul/testkit/membership')
  const setup = await setupOf(order)
  await runMembershipCampaign(setup, from, to, (run: MembershipRun) => {
    const line: Line = {
      seed: run.seed,
      aspect: run.aspect,
      nodes: run.nodes,
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
      progressEvery: 500,
      onFailure: (line) =>
        process.stdout.write(
          `membership+${order} seed=${line.seed} FAIL (${line.aspect}, ${line.nodes} nodes; ${line.environment})\n` +
            line.problems
              .slice(0, 12)
              .map((p) => `  ${p}\n`)
              .join('') +
            `  replay: pnpm campaign:membership ${order} --seed ${line.seed}\n`,
        ),
    })
    process.stdout.write(
      `membership+${order}: seeds ${args.from}..${args.to}: ${orderPassed} passed, ${orderFailed} failed (${Math.round((Date.now() - started) / 1000)} s)\n`,
    )
    passed += orderPassed
    failed += orderFailed
  }
  process.stdout.write(`${passed} passed, ${failed} failed\n`)
  process.exitCode = failed > 0 ? 1 : 0
}

await main()
