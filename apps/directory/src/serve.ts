/**
 * `consul-directory serve`: one replica (see `--help` and the README).
 *
 * Run under a parent process with an IPC channel (the cluster launcher), it also reports
 * `{ type: 'ready', port, restored }` once the group is active and its port listening,
 * `{ type: 'failed', message }`, and answers `{ type: 'state' }` with
 * `{ type: 'state', status, dump }`.
 */
import { readFileSync } from 'node:fs'
import { ConfigError, keyFromFile, parseServeArgs, type ReplicaConfig, USAGE } from './config.js'
import { type RunningDirectory, startDirectoryReplica } from './replica.js'

export async function serve(args: readonly string[]): Promise<void> {
  let config: ReplicaConfig
  let key: Uint8Array
  try {
    config = parseServeArgs(args, process.env)
    key =
      config.keyFile !== undefined
        ? keyFromFile(readFileSync(config.keyFile))
        : Buffer.from(config.keyHex!, 'hex')
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
  // Started by a launcher that went away (its channel closed): do not outlive it.
  process.on('disconnect', () => void shutdown())
  try {
    running = await startDirectoryReplica(config, { key })
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
