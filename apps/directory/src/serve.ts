/**
 * `consul-directory serve`: one replica (see `--help` and the README).
 *
 * Run under a parent process with an IPC channel (the cluster launcher), it also reports
 * `{ type: 'ready', port, restored }` once the group is active and its port listening,
 * `{ type: 'failed', message }`, and answers `{ type: 'state' }` with
 * `{ type: 'state', status, dump }`.
 */
import { readFileSync } from 'node:fs'
import {
  ConfigError,
  keyringFromFile,
  parseServeArgs,
  type ReplicaConfig,
  type RingKey,
  USAGE,
} from './config.js'
import { type RunningDirectory, startDirectoryReplica } from './replica.js'

export async function serve(args: readonly string[]): Promise<void> {
  let config: ReplicaConfig
  let keys: RingKey[]
  try {
    config = parseServeArgs(args, process.env)
    keys =
      config.keyFile !== undefined
        ? keyringFromFile(readFileSync(config.keyFile))
        : [{ id: 0, key: Buffer.from(config.keyHex!, 'hex') }]
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    process.stderr.write(`consul-directory: ${error.message}\n${USAGE}\n`)
    process.exit(2)
  }
  let running: RunningDirectory | undefined
  process.on('message', (m: { type?: string }) => {
    if (m?.type === 'state')
      process.send?.({
        type: 'state',
        status: running?.status() ?? null,
        dump: running?.dump() ?? null,
      })
    else if (m?.type === 'stop') void shutdown()
  })
  const shutdown = async () => {
    const r = running
    running = undefined
    await r?.stop().catch(() => {})
    process.exit(0)
  }
  process.on('SIGTERM', () => void shutdown())
  process.on('SIGINT', () => void shutdown())
  // A key rotation: re-read the key file and replace the keyring (a bad file keeps the old one).
  process.on('SIGHUP', () => {
    const file = config.keyFile
    if (file === undefined) {
      process.stderr.write(
        `consul-directory ${config.self}: SIGHUP ignored: the key came from CONSUL_GROUP_KEY, not a --key-file\n`,
      )
      return
    }
    try {
      const ring = keyringFromFile(readFileSync(file))
      running?.setKeys(ring)
      process.stdout.write(
        `consul-directory ${config.self}: keyring reloaded from ${file}: ids ${ring.map((k) => k.id).join(',')}\n`,
      )
    } catch (error) {
      process.stderr.write(
        `consul-directory ${config.self}: keyring not reloaded (${String(error)}); the old one stays\n`,
      )
    }
  })
  // Started by a launcher that went away (its channel closed): do not outlive it.
  process.on('disconnect', () => void shutdown())
  try {
    running = await startDirectoryReplica(config, { keys })
    process.stdout.write(
      `consul-directory ${config.self}: Redis protocol on ${config.listen.host}:${running.port} ` +
        `(${config.stack} stack, ${config.order} order, ${config.linearizableReads ? 'linearizable' : 'local'} reads; ` +
        `group ${config.group}: ${Object.keys(config.peers).join(', ')}${running.restored ? '; recovered from storage' : ''})\n`,
    )
    process.send?.({ type: 'ready', port: running.port, restored: running.restored })
  } catch (error) {
    process.stderr.write(`consul-directory ${config.self}: ${String(error)}\n`)
    process.send?.({ type: 'failed', message: String(error) })
    process.exit(1)
  }
}
