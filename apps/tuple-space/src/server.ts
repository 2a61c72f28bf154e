#!/usr/bin/env node
/**
 * `consul-tuple-space`: one replica of the tuple space (see `--help` and the README).
 *
 * Run under a parent process with an IPC channel (the cluster launcher), it also reports
 * `{ type: 'ready', port, restored, session }` once the group is active and its TCP port
 * listening, `{ type: 'failed', message }`, and answers `{ type: 'state' }` with
 * `{ type: 'state', dump, recovery, view }` (the replicated state as plain JSON and its digest).
 */
import { readFileSync } from 'node:fs'
import { ConfigError, keyFromFile, parseArgs, type ReplicaConfig, USAGE } from './config.js'
import { type RunningReplica, startReplica } from './run.js'

const args = process.argv.slice(2)
if (args.includes('--help') || args.includes('-h')) {
  process.stdout.write(`${USAGE}\n`)
  process.exit(0)
}

let config: ReplicaConfig
let key: Uint8Array
try {
  config = parseArgs(args, process.env)
  key =
    config.keyFile !== undefined
      ? keyFromFile(readFileSync(config.keyFile))
      : Buffer.from(config.keyHex!, 'hex')
} catch (error) {
  if (!(error instanceof ConfigError)) throw error
  process.stderr.write(`consul-tuple-space: ${error.message}\n${USAGE}\n`)
  process.exit(2)
}

let running: RunningReplica | undefined
process.on('message', (m: { type?: string }) => {
  if (m?.type === 'state')
    process.send?.({
      type: 'state',
      dump: running?.dump() ?? null,
      recovery: running?.recoveryState() ?? 'starting',
      view: running?.view() ?? null,
    })
  else if (m?.type === 'stop') void shutdown()
})

async function shutdown(): Promise<void> {
  const r = running
  running = undefined
  await r?.stop().catch(() => {})
  process.exit(0)
}
process.on('SIGTERM', () => void shutdown())
// Started by a launcher that went away (its channel closed): do not outlive it.
process.on('disconnect', () => void shutdown())
process.on('SIGINT', () => void shutdown())

try {
  running = await startReplica(config, { key })
  process.stdout.write(
    `consul-tuple-space ${config.self}: listening on ${config.listen.host}:${running.tcpPort} (group ${config.group}, members ${Object.keys(config.peers).join(',')}${running.restored ? ', recovered from storage' : ''})\n`,
  )
  process.send?.({
    type: 'ready',
    port: running.tcpPort,
    restored: running.restored,
    session: running.session,
  })
} catch (error) {
  process.stderr.write(`consul-tuple-space ${config.self}: ${String(error)}\n`)
  process.send?.({ type: 'failed', message: String(error) })
  process.exit(1)
}
