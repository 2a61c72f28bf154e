/**
 * One replica process of the state-transfer benchmark (see state-transfer.ts): the whole
 * strong stack on UDP (HMAC) and LMDB in `dir`, its groups opened or recovered with
 * `recoverReady` (restarted from a fetched checkpoint if need be). Config as argv[2] (JSON).
 *
 * IPC in: `fill { blobs, bytes }` (n1: that many `put`s of `bytes` each, `'safe'`),
 * `checkpoint`, `floor`, `break` (damage every checkpoint manifest in storage: only before
 * `start`), `start`, `stop`. IPC out: `ready`, `done`, `floor { wave }`, and on a restart
 * `transferring { at }`, `transferred { at, bytes, retried, donorChanges }`, `active { at }`.
 * Wall time is `performance.timeOrigin + performance.now()`: one clock for every process.
 */

import { crc32 } from 'node:zlib'
import { defineCommands, dispatcher, stateMachine } from '@consul/dispatcher'
import { divider } from '@consul/divider'
import { failureDetection } from '@consul/failure-detection'
import { membership } from '@consul/membership'
import { totalOrder } from '@consul/order-total'
import { psync } from '@consul/psync'
import { damageCheckpoints, recovery } from '@consul/recovery'
import { recoverReady } from '@consul/restart'
import { lmdbStorage } from '@consul/storage-lmdb'
import { udp } from '@consul/transport-udp'
import { createLogger, DISPATCHER, PSYNC, RECOVERY, stack } from '@consul/xkernel'

const config = JSON.parse(process.argv[2]!) as {
  self: string
  peers: Record<string, { host: string; port: number }>
  dir: string
  partBytes: number
  transferWindow: number
  transferBytesPerSecond: number
  maxDatagram: number
}

type Blobs = Map<number, Uint8Array>
const blobs = stateMachine({
  initial: (): Blobs => new Map(),
  commands: defineCommands({
    put: (s: Blobs, a: { k: number; v: Uint8Array }) => void s.set(a.k, a.v),
  }),
  snapshot: (s) => [...s],
  restore: (x) => new Map(x as [number, Uint8Array][]),
})

const wall = () => performance.timeOrigin + performance.now()
const send = (m: unknown) => process.send?.(m)
const logger = createLogger({ level: 'error' })
const spec = { port: 'g', members: Object.keys(config.peers) }

async function start() {
  const transport = await udp({
    self: config.self,
    peers: config.peers,
    port: config.peers[config.self]!.port,
    host: '127.0.0.1',
    key: Buffer.alloc(32, 7),
    groupId: 'bench-transfer',
    maxDatagram: config.maxDatagram,
    logger,
  })
  const storage = await lmdbStorage(config.dir)
  const host = await stack()
    .use(psync({ logEveryMs: 2, maxPayloadBytes: 4 * 1024 * 1024 }))
    .use(divider())
    .use(failureDetection({ suspectAfterMs: 30_000 }))
    .use(membership())
    .use(totalOrder({ ackDelayMs: 1, maxBatchBytes: 1024 * 1024 }))
    .use(dispatcher({ machine: blobs }))
    .use(
      recovery({
        checkpointEveryWaves: 1_000_000,
        floorEveryMs: 20,
        partBytes: config.partBytes,
        transferWindow: config.transferWindow,
        transferBytesPerSecond: config.transferBytesPerSecond,
        // The native CRC-32 (node:zlib): the same checksum, ≈ 5× faster than the default.
        crc32,
      }),
    )
    .start({ transport, storage, logger })
  const stats = () => host.stats().recovery ?? {}
  let transferring = false
  // Watch the transfer of a restart: when it runs and when the fetched record is durable.
  const watch = setInterval(() => {
    const state = host.group('g')?.get(RECOVERY).state()
    if (!transferring && state === 'transferring') {
      transferring = true
      send({ type: 'transferring', at: wall() })
    }
    if (transferring && (stats().transfersCompleted ?? 0) >= 1) {
      clearInterval(watch)
      const st = stats()
      send({
        type: 'transferred',
        at: wall(),
        bytes: st.transferBytesReceived ?? 0,
        retried: st.transferPartsRetried ?? 0,
        donorChanges: st.transferDonorChanges ?? 0,
      })
    }
  }, 1)
  const [group] = await recoverReady(host, [spec])
  clearInterval(watch)
  if (transferring) send({ type: 'active', at: wall() })
  return { host, group: group! }
}

let node: Awaited<ReturnType<typeof start>> | undefined
const g = () => node!.host.group('g')!

process.on(
  'message',
  async (m: { type: string; blobs?: number; bytes?: number; ms?: number; inflight?: number }) => {
    try {
      if (m.type === 'start') {
        node = await start()
        send({ type: 'ready' })
      } else if (m.type === 'fill') {
        const client = blobs.client(g().get(DISPATCHER))
        for (let k = 0; k < m.blobs!; k++) {
          const v = new Uint8Array(m.bytes!)
          for (let j = 0; j < v.length; j += 4096) v[j] = (k + j) & 0xff
          await client.submit('put', { k, v })
        }
        send({ type: 'done' })
      } else if (m.type === 'checkpoint') {
        await g().get(RECOVERY).checkpoint()
        send({ type: 'done' })
      } else if (m.type === 'floor') {
        send({ type: 'floor', wave: g().get(PSYNC).waveFloor() })
      } else if (m.type === 'load') {
        // Small commands, `inflight` at a time, for `ms`: the wall time of each completion.
        const client = blobs.client(g().get(DISPATCHER))
        const until = wall() + m.ms!
        const done: number[] = []
        let k = 0
        const one = async (): Promise<void> => {
          while (wall() < until) {
            try {
              await client.submit('put', { k: -2 - (k++ % 1000), v: new Uint8Array(8) })
              done.push(wall())
            } catch {
              await new Promise((r) => setTimeout(r, 5))
            }
          }
        }
        await Promise.all(Array.from({ length: m.inflight! }, one))
        send({ type: 'loaded', done })
      } else if (m.type === 'nudge') {
        await blobs.client(g().get(DISPATCHER)).submit('put', { k: -1, v: new Uint8Array(8) })
        send({ type: 'done' })
      } else if (m.type === 'stop') {
        await node?.host.stop()
        node = undefined
        send({ type: 'done' })
      } else if (m.type === 'break') {
        const disk = await lmdbStorage(config.dir)
        damageCheckpoints(disk, 'g')
        await disk.sync()
        await disk.close()
        send({ type: 'done' })
      } else if (m.type === 'exit') process.exit(0)
    } catch (error) {
      send({ type: 'error', message: String(error) })
    }
  },
)
send({ type: 'spawned' })
