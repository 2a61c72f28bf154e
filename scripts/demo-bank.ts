/**
 * `pnpm demo:bank`: three replicas of a tiny bank account, each its own Consul host on real UDP
 * (loopback, HMAC-authenticated) with Psync, total order and LMDB storage, in one process.
 * All three submit deposits and withdrawals concurrently; every replica applies the same
 * sequence and ends with the same balance. Then replica b crashes: new commands wait (no
 * Membership package yet to exclude it); b restarts from its disk, replays its log, catches
 * up, and the waiting commands complete everywhere.
 */
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { divider } from '@consul/divider'
import { totalOrder } from '@consul/order-total'
import { psync } from '@consul/psync'
import { lmdbStorage } from '@consul/storage-lmdb'
import { udp } from '@consul/transport-udp'
import { createLogger, type OpenHooks, ORDER, type OrderControl, stack } from '@consul/xkernel'
import { freeUdpPorts } from '../bench/src/ports.js'

const ids = ['a', 'b', 'c'] as const
const key = randomBytes(32)
const root = mkdtempSync(join(tmpdir(), 'consul-demo-'))
const logger = createLogger({ level: 'error' })

const ports = await freeUdpPorts(ids.length)
const peers = Object.fromEntries(ids.map((id, i) => [id, { host: '127.0.0.1', port: ports[i]! }]))
const balances = new Map<string, number>()
const applied = new Map<string, number>()

const resources = new Map<string, { close(): Promise<void> }[]>()

async function boot(id: string) {
  const transport = await udp({
    self: id,
    peers,
    port: peers[id]!.port,
    host: '127.0.0.1',
    key,
    logger,
  })
  const storage = await lmdbStorage(join(root, id))
  const host = await stack()
    .use(psync({ logEveryMs: 2 }))
    .use(divider())
    .use(totalOrder())
    .start({ transport, storage, logger })
  resources.set(id, [transport, storage])
  balances.set(id, 0)
  applied.set(id, 0)
  // The handler goes on before the sessions start, so it also sees what Psync replays from
  // the log after a restart: a new process starts from zero and rebuilds its state.
  const hooks: OpenHooks<{ order: OrderControl }> = {
    beforeStart(group) {
      group.get(ORDER).onDeliver((c) => {
        const amount = Number(new TextDecoder().decode(c.command))
        balances.set(id, Math.max(0, balances.get(id)! + amount)) // no overdraft
        applied.set(id, applied.get(id)! + 1)
      })
    },
  }
  const recovered = await host.recoverGroups(undefined, hooks)
  if (recovered.length === 0) await host.open({ port: 'bank', members: [...ids] }, hooks)
  return host
}

const hosts = new Map<string, Awaited<ReturnType<typeof boot>>>()
for (const id of ids) hosts.set(id, await boot(id))
const submit = (id: string, amount: number) =>
  hosts
    .get(id)!
    .group('bank')!
    .get(ORDER)
    .submit(new TextEncoder().encode(String(amount)))
const settle = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const show = (title: string) => {
  console.log(title)
  for (const id of ids)
    console.log(`  replica ${id}: ${applied.get(id)} commands applied, balance ${balances.get(id)}`)
}

console.log(`Three replicas on UDP ports ${ports.join(', ')}; storage in ${root}\n`)
await Promise.all(
  ids.flatMap((id, i) =>
    Array.from({ length: 100 }, (_, n) => submit(id, n % 3 === 0 ? -4 * (i + 1) : 5)),
  ),
)
await settle(200)
show('After 300 concurrent deposits and withdrawals:')

console.log('\nReplica b crashes; a and c submit 50 more each…')
hosts.get('b')!.crash()
// In one process the "dead" replica's socket and store must be released by hand, as the
// operating system would for a real crashed process.
for (const r of resources.get('b')!) await r.close()
const waiting = ['a', 'c'].flatMap((id) => Array.from({ length: 50 }, () => submit(id, 1)))
await settle(300)
show(
  'While b is down (a total order needs every member of the agreed list; without the Membership package, nobody excludes b, so the new commands wait):',
)

console.log('\nReplica b restarts from its disk, replays its log and catches up…')
hosts.set('b', await boot('b'))
await Promise.all([...waiting, submit('b', 1000)])
await settle(300)
show('After b is back:')

const same = new Set(ids.map((id) => `${applied.get(id)}/${balances.get(id)}`)).size === 1
console.log(same ? '\nEvery replica applied the same sequence.' : '\nReplicas differ!')
for (const host of hosts.values()) await host.stop()
rmSync(root, { recursive: true, force: true })
process.exit(same ? 0 : 1)
