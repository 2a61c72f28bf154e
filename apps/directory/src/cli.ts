#!/usr/bin/env node
/**
 * `consul-directory`: `serve` runs one replica; `cluster` runs a local cluster of separate
 * replica processes and shows a live line per replica. See `--help` and the README.
 */
import { createInterface } from 'node:readline'
import { type Cluster, type ReplicaReport, startCluster } from './cluster.js'
import { ConfigError, oneOf, parseFlags, positive, USAGE } from './config.js'
import { serve } from './serve.js'

const [command, ...rest] = process.argv.slice(2)

function fail(message: string): never {
  process.stderr.write(`consul-directory: ${message}\n${USAGE}\n`)
  process.exit(2)
}

if (command === undefined || command === '--help' || command === '-h' || rest.includes('--help')) {
  process.stdout.write(`${USAGE}\n`)
  process.exit(0)
}
if (command === 'serve') {
  await serve(rest)
} else if (command === 'cluster') {
  await cluster(rest)
} else {
  fail(`unknown command ${JSON.stringify(command)} (serve or cluster)`)
}

const SPINNER = '⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏'

/** One replica's live line. */
export function line(
  name: string,
  port: number,
  state: 'down' | 'paused' | ReplicaReport,
  maxApplied: number,
  frame: number,
): string {
  const head = `${name}  :${port}`
  if (state === 'down') return `${head}  down`
  if (state === 'paused') return `${head}  paused (SIGSTOP)`
  const s = state.status
  if (s === null) return `${head}  starting ${SPINNER[frame % SPINNER.length]}`
  const view =
    s.view === null
      ? 'view –'
      : `view ${s.view.configuration}.${s.view.id} [${s.view.members.join(',')}]`
  if (s.recovery !== 'active') {
    const progress =
      s.transfer !== undefined && s.transfer.total !== undefined
        ? ` ${((100 * s.transfer.bytes) / Math.max(1, s.transfer.total)).toFixed(0)}% of ${s.transfer.total} bytes`
        : ''
    return `${head}  ${s.recovery} ${SPINNER[frame % SPINNER.length]}${progress}  ${view}`
  }
  const lag = maxApplied - s.applied
  return `${head}  active  ${view}  applied ${s.applied}  lag ${lag}  keys ${state.dump?.keys ?? 0}`
}

async function cluster(args: readonly string[]): Promise<void> {
  let c: Cluster
  try {
    const flags = parseFlags(
      args,
      ['replicas', 'base-port', 'dir', 'stack', 'order', 'password', 'suspect-after-ms'],
      ['linearizable-reads', 'encrypt'],
    )
    const replicas = positive(flags.get('replicas'), '--replicas', 3)
    const basePort = flags.has('base-port')
      ? positive(flags.get('base-port'), '--base-port', 6380)
      : 6380
    const password = flags.get('password')
    const dir = flags.get('dir')
    process.stdout.write(`starting ${replicas} replicas …\n`)
    c = await startCluster({
      replicas,
      basePort,
      stack: oneOf(flags.get('stack'), '--stack', ['strong', 'weak'] as const),
      order: oneOf(flags.get('order'), '--order', ['total', 'semantic'] as const),
      linearizableReads: flags.has('linearizable-reads'),
      encrypt: flags.has('encrypt'),
      suspectAfterMs: positive(flags.get('suspect-after-ms'), '--suspect-after-ms', 1_000),
      ...(password === undefined ? {} : { password }),
      ...(dir === undefined ? {} : { dir }),
      output: 'ignore',
    })
  } catch (error) {
    if (error instanceof ConfigError || error instanceof RangeError) fail(error.message)
    throw error
  }
  process.stdout.write(
    `${c.replicas.map((r) => `${r.name}: redis-cli -p ${r.port}`).join('\n')}\n` +
      'commands: kill <r> | stop <r> | start <r> | pause <r> | resume <r> | quit\n\n',
  )
  const tty = process.stdout.isTTY === true
  let frame = 0
  let printed = 0
  let lastPlain = 0
  const draw = async () => {
    const reports = await c.reports()
    const maxApplied = Math.max(0, ...Object.values(reports).map((r) => r.status?.applied ?? 0))
    const lines = c.replicas.map((r) =>
      line(
        r.name,
        r.port,
        !r.running ? 'down' : r.paused ? 'paused' : (reports[r.name] ?? 'down'),
        maxApplied,
        frame,
      ),
    )
    frame++
    if (tty) {
      if (printed > 0) process.stdout.write(`\x1b[${printed}A`)
      process.stdout.write(lines.map((l) => `\x1b[2K${l}\n`).join(''))
      printed = lines.length
    } else if (Date.now() - lastPlain >= 5_000) {
      lastPlain = Date.now()
      process.stdout.write(`${lines.join('\n')}\n\n`)
    }
  }
  const timer = setInterval(() => void draw().catch(() => {}), 250)
  let stopping = false
  const quit = async () => {
    if (stopping) return
    stopping = true
    clearInterval(timer)
    process.stdout.write('stopping …\n')
    await c.stop()
    process.exit(0)
  }
  process.on('SIGINT', () => void quit())
  process.on('SIGTERM', () => void quit())
  const input = createInterface({ input: process.stdin })
  input.on('line', (text) => {
    const [verb, name] = text.trim().split(/\s+/)
    if (verb === undefined || verb === '') return
    if (verb === 'quit' || verb === 'exit') return void quit()
    try {
      const r = c.replica(name ?? '')
      printed = 0
      if (verb === 'kill') void r.kill('SIGKILL')
      else if (verb === 'stop') void r.kill('SIGTERM')
      else if (verb === 'start')
        r.start({ wait: 'listening' }).catch((e) => process.stdout.write(`${String(e)}\n`))
      else if (verb === 'pause') r.pause(true)
      else if (verb === 'resume') r.pause(false)
      else process.stdout.write(`unknown command ${verb}\n`)
    } catch (error) {
      printed = 0
      process.stdout.write(`${String(error instanceof Error ? error.message : error)}\n`)
    }
  })
}
