/**
 * `pnpm bench <name…>`: runs the named benchmarks (all when none is named), prints a table
 * per benchmark and writes `bench/results/<name>.json`.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

type Bench = () => Promise<Record<string, number | string>>

// Loaded lazily, so one benchmark's dependencies do not slow the others' start.
const benches: Record<string, Bench> = {
  sim: async () => (await import('./src/sim.js')).benchSim(),
  transport: async () => (await import('./src/transport.js')).benchTransport(),
  storage: async () => (await import('./src/storage.js')).benchStorage(),
  psync: async () => (await import('./src/psync.js')).benchPsync(),
  order: async () => (await import('./src/order.js')).benchOrder(),
  repair: async () => (await import('./src/repair.js')).benchRepair(),
  failover: async () => (await import('./src/failover.js')).benchFailover(),
  soak: async () => (await import('./src/failover.js')).benchSoak(),
  recovery: async () => (await import('./src/recovery.js')).benchRecovery(),
  'recovery-soak': async () => (await import('./src/recovery-soak.js')).benchRecoverySoak(),
  directory: async () => (await import('./src/directory.js')).benchDirectory(),
}

const here = dirname(fileURLToPath(import.meta.url))
const names = process.argv.slice(2).filter((a) => a !== '--')
const unknown = names.filter((n) => !(n in benches))
if (unknown.length > 0) {
  process.stderr.write(
    `unknown benchmark(s): ${unknown.join(', ')}; known: ${Object.keys(benches).join(', ')}\n`,
  )
  process.exit(2)
}
// The soaks run for minutes: only when named (`pnpm soak`).
const soaks = new Set(['soak', 'recovery-soak'])
for (const name of names.length > 0 ? names : Object.keys(benches).filter((n) => !soaks.has(n))) {
  process.stdout.write(`\n## ${name}\n`)
  const result = await benches[name]!()
  const width = Math.max(...Object.keys(result).map((k) => k.length))
  for (const [key, value] of Object.entries(result)) {
    const shown =
      typeof value === 'number'
        ? value.toLocaleString('en-US', { maximumFractionDigits: 2 })
        : value
    process.stdout.write(`${key.padEnd(width)}  ${shown}\n`)
  }
  const file = join(here, 'results', `${name}.json`)
  mkdirSync(dirname(file), { recursive: true })
  writeFileSync(
    file,
    `${JSON.stringify({ ...result, measuredAt: new Date().toISOString(), node: process.version }, null, 2)}\n`,
  )
  process.stdout.write(`-> ${file}\n`)
}
