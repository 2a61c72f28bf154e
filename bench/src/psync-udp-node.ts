/** One process of the Psync-over-UDP benchmark (see psync-udp.ts). */
import { cpuUsage } from 'node:process'
import { psync } from '@consul/psync'
import { udp } from '@consul/transport-udp'
import { createLogger, memoryStorage, PSYNC, stack } from '@consul/xkernel'

const { self, peers, durationMs } = JSON.parse(process.argv[2]!) as {
  self: string
  peers: Record<string, { host: string; port: number }>
  durationMs: number
}
const logger = createLogger({ level: 'error' })
const transport = await udp({ self, peers, port: peers[self]!.port, host: '127.0.0.1', logger })
const host = await stack()
  .use(psync({ logEveryMs: 2 }))
  .start({ transport, storage: memoryStorage(), logger })
const group = await host.open({ port: 'bench', members: Object.keys(peers) })
const conversation = group.get(PSYNC)
let delivered = 0
conversation.onDeliver(() => {
  delivered++
})
process.send?.({ ready: 1 })
await new Promise((resolve) => process.once('message', resolve))

const payload = new Uint8Array(64)
const started = performance.now()
const cpu = cpuUsage()
let sending = true
setTimeout(() => {
  sending = false
}, durationMs)
// Send in small bursts and yield, so receiving keeps up (Psync itself has no flow control).
while (sending) {
  for (let i = 0; i < 20; i++) conversation.send(payload)
  await new Promise((resolve) => setImmediate(resolve))
}
const elapsedMs = performance.now() - started
const used = cpuUsage(cpu)
process.send?.({ delivered, elapsedMs, cpuMicros: used.user + used.system })
await new Promise((resolve) => setTimeout(resolve, 200))
await host.stop()
process.exit(0)
