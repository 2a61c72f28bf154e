/**
 * Psync over real UDP between separate processes on loopback: each process runs a host with
 * Psync on `@consul/transport-udp` (in-memory storage: this measures the protocol and the
 * network path, not the disk), sends 64-byte messages as fast as its event loop allows, and
 * counts causal deliveries. The result is the delivery rate at the slowest process.
 */
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { freeUdpPorts } from './ports.js'

export interface PsyncUdpResult {
  /** Messages delivered per second at the slowest process (all senders' messages). */
  readonly msgsPerSecond: number
  /** CPU microseconds per delivered message, averaged over the processes. */
  readonly cpuMicrosPerMessage: number
}

export async function psyncOverUdp(options: {
  processes: number
  durationMs: number
}): Promise<PsyncUdpResult> {
  const ids = Array.from({ length: options.processes }, (_, i) => `p${i + 1}`)
  const ports = await freeUdpPorts(ids.length)
  const peers = Object.fromEntries(ids.map((id, i) => [id, { host: '127.0.0.1', port: ports[i]! }]))
  const script = fileURLToPath(new URL('./psync-udp-node.ts', import.meta.url))
  const children = ids.map((self) =>
    fork(script, [JSON.stringify({ self, peers, durationMs: options.durationMs })], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    }),
  )
  const message = (child: (typeof children)[number]) =>
    new Promise<Record<string, number>>((resolve, reject) => {
      child.once('message', (m) => resolve(m as Record<string, number>))
      child.once('exit', (code) => reject(new Error(`bench process exited with ${code}`)))
    })
  await Promise.all(children.map(message)) // ready
  for (const child of children) child.send('go')
  const results = await Promise.all(children.map(message))
  for (const child of children) child.kill()
  const rates = results.map((r) => r.delivered! / (r.elapsedMs! / 1000))
  const cpu = results.reduce((sum, r) => sum + r.cpuMicros! / r.delivered!, 0) / results.length
  return {
    msgsPerSecond: Math.round(Math.min(...rates)),
    cpuMicrosPerMessage: Math.round(cpu * 100) / 100,
  }
}
