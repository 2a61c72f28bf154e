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
import {
  ConfigError,
  keyringFromFile,
  parseArgs,
  type ReplicaConfig,
  type RingKey,
  USAGE,
} from './config.js'
import { type RunningReplica, startReplica } from './run.js'

const args = process.argv.slice(2)
if (args.includes('--help') || args.includes('-h')) {
  process.stdout.write(`${USAGE}\n`)
  process.exit(0)
}

let config: ReplicaConfig
let keys: RingKey[]
try {
  config = parseArgs(args, process.env)
  keys =
    config.keyFile !== undefined
      ? keyringFromFile(readFileSync(config.keyFile))
      : [{ id: 0, key: Buffer.from(config.keyHex!, 'hex') }]
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
// A key rotation: re-read the key file and replace the keyring (a bad file keeps the old one).
process.on('SIGHUP', () => {
  const file = config.keyFile
  if (file === undefined) {
    process.stderr.write(
      `consul-tuple-space ${config.self}: SIGHUP ignored: the key came from CONSUL_GROUP_KEY, not a --key-file\n`,
    )
    return
  }
  try {
    const ring = keyringFromFile(readFileSync(file))
    running?.setKeys(ring)
    process.stdout.write(
      `consul-tuple-space ${config.self}: keyring reloaded from ${file}: ids ${ring.map((k) => k.id).join(',')}\n`,
    )
  } catch (error) {
    process.stderr.write(
      `consul-tuple-space ${config.self}: keyring not reloaded (${String(error)}); the old one stays\n`,
    )
  }
})

try {
  running = await startReplica(config, { keys })
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
