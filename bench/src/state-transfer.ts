/**
 * State-transfer throughput on loopback: three replica processes of the whole strong stack
 * (`state-transfer-node.ts`: real UDP with HMAC, real LMDB). A state of `stateMB` megabytes is
 * built through the group, every replica checkpoints it twice (the prune floor rises, Psync
 * prunes its log), and n3 is stopped, its checkpoint manifests broken on disk, and started
 * again: with no usable checkpoint and a pruned log it fetches one from n1 or n2. Measured
 * from the moment its Recovery is `transferring` to the fetched checkpoint being durable (the
 * bytes of the parts over that time), and the whole time from the restart to `active` again
 * (the restart from the fetched checkpoint and its restore included).
 */

import { type ChildProcess, fork } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { freeUdpPorts } from './ports.js'

const MEMBERS = ['n1', 'n2', 'n3']
const BLOB = 500_000

export interface TransferFigures {
  readonly mbPerSecond: number
  readonly bytes: number
  readonly transferMs: number
  readonly restartToActiveMs: number
  readonly partsRetried: number
  readonly donorChanges: number
  /** n1's ordering rate (small commands, 64 in flight) with every replica active, and while n3 fetches. */
  readonly orderingCmdsPerSecondBefore: number
  readonly orderingCmdsPerSecondDuringTransfer: number
}

type Reply = { type: string; [k: string]: unknown }

function replica(config: object) {
  const child = fork(
    fileURLToPath(new URL('./state-transfer-node.ts', import.meta.url)),
    [JSON.stringify(config)],
    {
      execArgv: [
        '--import',
        'tsx',
        // `CONSUL_BENCH_CPU_PROF=dir`: a CPU profile of every replica process, for a look inside.
        ...(process.env.CONSUL_BENCH_CPU_PROF
          ? ['--cpu-prof', `--cpu-prof-dir=${process.env.CONSUL_BENCH_CPU_PROF}`]
          : []),
      ],
    },
  )
  const waiting: ((m: Reply) => void)[] = []
  const events: Reply[] = []
  child.on('message', (m: Reply) => {
    if (m.type === 'error') throw new Error(`replica: ${String(m.message)}`)
    if (['transferring', 'transferred', 'active'].includes(m.type)) events.push(m)
    else waiting.shift()?.(m)
  })
  const ask = (m: object) =>
    new Promise<Reply>((resolve) => {
      waiting.push(resolve)
      child.send(m)
    })
  const spawned = new Promise<Reply>((resolve) => waiting.push(resolve))
  return { child, ask, events, spawned }
}

export async function benchStateTransfer(
  stateMB: number,
  partBytes: number,
  transferWindow: number,
  maxDatagram: number,
  /** The fetcher's pace (0: the window alone). */
  transferBytesPerSecond = 0,
): Promise<TransferFigures> {
  const ports = await freeUdpPorts(3)
  const peers = Object.fromEntries(
    MEMBERS.map((m, i) => [m, { host: '127.0.0.1', port: ports[i]! }]),
  )
  const dirs = MEMBERS.map((m) => mkdtempSync(join(tmpdir(), `consul-transfer-${m}-`)))
  const nodes = MEMBERS.map((self, i) =>
    replica({
      self,
      peers,
      dir: dirs[i],
      partBytes,
      transferWindow,
      transferBytesPerSecond,
      maxDatagram,
    }),
  )
  const children: ChildProcess[] = nodes.map((n) => n.child)
  try {
    await Promise.all(nodes.map((n) => n.spawned))
    await Promise.all(nodes.map((n) => n.ask({ type: 'start' })))
    await nodes[0]!.ask({
      type: 'fill',
      blobs: Math.ceil((stateMB * 1_000_000) / BLOB),
      bytes: BLOB,
    })
    for (let round = 0; round < 2; round++) {
      await Promise.all(nodes.map((n) => n.ask({ type: 'checkpoint' })))
      await nodes[0]!.ask({ type: 'nudge' })
    }
    for (let i = 0; i < 500; i++) {
      if (((await nodes[2]!.ask({ type: 'floor' })).wave as number) > 0) break
      await nodes[0]!.ask({ type: 'nudge' })
    }
    // The group's ordering with every replica active, then while n3 fetches (it takes part in
    // the waves meanwhile: its Failure Detection speaks, so nobody waits for it).
    const rate = (done: number[], from: number, to: number) =>
      (done.filter((t) => t >= from && t <= to).length / (to - from)) * 1000
    const before = (await nodes[0]!.ask({ type: 'load', ms: 1_500, inflight: 64 })).done as number[]
    await nodes[2]!.ask({ type: 'stop' })
    await nodes[2]!.ask({ type: 'break' })
    const restartedAt = performance.timeOrigin + performance.now()
    const during = nodes[0]!.ask({ type: 'load', ms: 8_000, inflight: 64 })
    await nodes[2]!.ask({ type: 'start' })
    const loaded = (await during).done as number[]
    const ev = (type: string) => nodes[2]!.events.find((e) => e.type === type)
    const started = ev('transferring')
    const done = ev('transferred')
    const active = ev('active')
    if (started === undefined || done === undefined || active === undefined)
      throw new Error('n3 did not fetch a checkpoint: no state transfer to measure')
    const transferMs = (done.at as number) - (started.at as number)
    const bytes = done.bytes as number
    return {
      mbPerSecond: Math.round((bytes / 1e6 / (transferMs / 1000)) * 10) / 10,
      bytes,
      transferMs: Math.round(transferMs),
      restartToActiveMs: Math.round((active.at as number) - restartedAt),
      partsRetried: done.retried as number,
      donorChanges: done.donorChanges as number,
      orderingCmdsPerSecondBefore: Math.round(rate(before, before[0]! + 250, before.at(-1)!)),
      orderingCmdsPerSecondDuringTransfer: Math.round(
        rate(loaded, started.at as number, done.at as number),
      ),
    }
  } finally {
    for (const c of children) c.send({ type: 'exit' })
    await Promise.all(
      children.map((c) => new Promise((r) => (c.exitCode !== null ? r(0) : c.once('exit', r)))),
    )
    for (const d of dirs) rmSync(d, { recursive: true, force: true })
  }
}
