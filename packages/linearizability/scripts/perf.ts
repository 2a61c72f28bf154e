/**
 * The performance figures of the README: `pnpm --filter @consul/linearizability perf`.
 * Histories of a correct store (8 clients, seeded), checked for linearizability and with the
 * stale-read check: spread over 50 keys with 1 % and 5 % unknown outcomes, all on one key, and
 * with MGETs and MSETs that join every key into one part.
 */
import { check, checkStaleReads, kvModel } from '../src/index.js'
import { linearizableWorkload, type WorkloadOptions } from '../test/support/workload.js'

function measure(label: string, run: () => { result: string }): void {
  run() // warm the JIT once
  const times: number[] = []
  let result = ''
  for (let round = 0; round < 5; round++) {
    const started = performance.now()
    result = run().result
    times.push(performance.now() - started)
  }
  times.sort((a, b) => a - b)
  console.log(
    `${label}: ${result}, median ${times[2]!.toFixed(0)} ms (min ${times[0]!.toFixed(0)}, max ${times[4]!.toFixed(0)})`,
  )
}

const cases: [string, WorkloadOptions][] = [
  ['20,000 ops, 50 keys, 1 % unknown', { operations: 20_000, keys: 50, clients: 8, seed: 1 }],
  [
    '20,000 ops, 50 keys, 5 % unknown',
    { operations: 20_000, keys: 50, clients: 8, seed: 2, unknownRate: 0.05 },
  ],
  ['20,000 ops, 1 key, 1 % unknown', { operations: 20_000, keys: 1, clients: 8, seed: 3 }],
  [
    '1,000 ops, 20 keys joined by MGET/MSET, 2 % unknown',
    { operations: 1_000, keys: 20, clients: 8, seed: 4, unknownRate: 0.02, multiKeyRate: 0.1 },
  ],
]
for (const [label, options] of cases) {
  const history = linearizableWorkload(options)
  measure(`check, ${label}`, () => check(kvModel(), history))
  measure(`checkStaleReads, ${label}`, () => checkStaleReads(history, { timeoutMs: 10_000 }))
}
