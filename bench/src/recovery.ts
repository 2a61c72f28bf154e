/**
 * `pnpm bench recovery`: what a restart costs, with the whole strong stack (Psync, the
 * Divider, Failure Detection, Membership, total order, the Dispatcher with a key-value
 * machine, Recovery) in the simulator — virtual network and disk, so the figures are this
 * process's CPU, measured in wall time:
 *
 * - **replay rate**: a replica with a long log (no checkpoint) is crashed and restarted;
 *   commands it re-applies per second of wall time until Recovery is active again;
 * - **rejoin time** against log length (several lengths, up to 1,000,000 commands);
 * - **checkpoint cost**: ordering throughput (commands/s, wall) with a coordinated checkpoint
 *   every 8 waves of a 20,000-key state, against none.
 *
 * - **state transfer** (`state-transfer.ts`): three replica processes on real UDP and LMDB on
 *   loopback, MB/s of a fetched 64 MB checkpoint with 64 KiB datagrams, and of a 16 MB one with
 *   the transport's default 1400-byte datagrams.
 *
 * - **durable vs in-memory ordering**: the Order benchmark's `total3` and `durable3` phases
 *   (3 replica processes on UDP, total order, memory storage against LMDB).
 *
 * Raw `node:dgram` loopback datagrams/s of the same run give the machine's speed beside them.
 */

import { defineCommands, dispatcher, stateMachine } from '@consul/dispatcher'
import { divider } from '@consul/divider'
import { failureDetection } from '@consul/failure-detection'
import { membership } from '@consul/membership'
import { totalOrder } from '@consul/order-total'
import { psync } from '@consul/psync'
import { recovery } from '@consul/recovery'
import { dist, Simulation } from '@consul/sim'
import { DISPATCHER, RECOVERY, stack } from '@consul/xkernel'
import { benchOrder } from './order.js'
import { rawUdpBaseline } from './raw-udp.js'
import { benchStateTransfer } from './state-transfer.js'

type Kv = Map<number, number>
const kv = stateMachine({
  initial: (): Kv => new Map(),
  commands: defineCommands({
    put: (s: Kv, a: { k: number; v: number }) => void s.set(a.k, a.v),
  }),
  snapshot: (s) => [...s],
  restore: (x) => new Map(x as [number, number][]),
})

function build(seed: number, checkpointEveryWaves: number) {
  return new Simulation({
    seed,
    nodes: 3,
    stack: stack()
      .use(psync({ logEveryMs: 5 }))
      .use(divider())
      .use(failureDetection({ suspectAfterMs: 60_000 }))
      .use(membership())
      .use(totalOrder({ ackDelayMs: 1, maxBatch: 1024 }))
      .use(dispatcher({ machine: kv }))
      .use(recovery({ checkpointEveryWaves })),
    network: { delay: dist.uniform(0.2, 0.6) },
  })
}

/** Offers `commands` in bursts of 3 × 2,000 per ms of virtual time, `'agreed'` (no waiting). */
async function fill(
  sim: ReturnType<typeof build>,
  commands: number,
  keys: number,
): Promise<number> {
  let sent = 0
  let t = sim.now + 1
  while (sent < commands) {
    for (const n of sim.nodes) {
      const base = sent
      sim.at(t, () => {
        const client = kv.client(sim.host(n).group('g')!.get(DISPATCHER))
        for (let i = 0; i < 2_000; i++)
          void client
            .submit('put', { k: (base + i) % keys, v: i }, { level: 'agreed' })
            .catch(() => {})
      })
      sent += 2_000
    }
    t += 1
  }
  const started = performance.now()
  await sim.run({ until: t + 200 })
  return performance.now() - started
}

async function restartCost(commands: number) {
  const sim = build(11, 1_000_000_000)
  await sim.start()
  await sim.openAll({ port: 'g' })
  await fill(sim, commands, 1_000)
  const applied = sim.host('n3').stats().dispatcher!.appliedTotal!
  sim.crash('n3')
  const started = performance.now()
  await sim.restart('n3')
  const rec = sim.host('n3').group('g')!.get(RECOVERY)
  for (let i = 0; i < 200 && rec.state() !== 'active'; i++) await sim.run({ for: 5 })
  const ms = performance.now() - started
  if (rec.state() !== 'active') throw new Error(`n3 did not rejoin after ${commands} commands`)
  return { applied, ms }
}

async function throughput(checkpointEveryWaves: number) {
  const sim = build(12, checkpointEveryWaves)
  await sim.start()
  await sim.openAll({ port: 'g' })
  const commands = 240_000
  const ms = await fill(sim, commands, 20_000)
  const checkpoints = sim.host('n1').stats().recovery!.checkpoints ?? 0
  return { perSecond: (commands / ms) * 1000, checkpoints }
}

export async function benchRecovery(): Promise<Record<string, number | string>> {
  const out: Record<string, number | string> = {}
  let replayRate = 0
  for (const commands of [100_000, 300_000, 1_000_000]) {
    const { applied, ms } = await restartCost(commands)
    out[commands === 1_000_000 ? 'rejoinMsAt1MCommands' : `rejoinMsAt${commands / 1000}kCommands`] =
      Math.round(ms)
    replayRate = (applied / ms) * 1000
  }
  out.replayCmdsPerSecond = Math.round(replayRate)
  const without = await throughput(1_000_000_000)
  const withCheckpoints = await throughput(8)
  out.orderingCmdsPerSecondNoCheckpoints = Math.round(without.perSecond)
  out.orderingCmdsPerSecondCheckpointEvery8Waves = Math.round(withCheckpoints.perSecond)
  out.checkpointsTaken = withCheckpoints.checkpoints
  out.throughputRatioWhileCheckpointing =
    Math.round((withCheckpoints.perSecond / without.perSecond) * 100) / 100
  // State transfer on loopback, real UDP and LMDB, three replica processes: 250 kB parts in
  // 64 KiB datagrams, and 16 KiB parts in the transport's default 1400-byte datagrams.
  const big = await benchStateTransfer(64, 250_000, 16, 65_507)
  out.stateTransferMBPerSecond = big.mbPerSecond
  out.stateTransferBytes = big.bytes
  out.stateTransferMs = big.transferMs
  out.stateTransferRestartToActiveMs = big.restartToActiveMs
  out.stateTransferPartsRetried = big.partsRetried
  out.orderingCmdsPerSecondBeforeTransfer = big.orderingCmdsPerSecondBefore
  out.orderingCmdsPerSecondDuringTransfer = big.orderingCmdsPerSecondDuringTransfer
  // Paced to 24 MB/s (`transferBytesPerSecond`): what the group keeps of its ordering.
  const paced = await benchStateTransfer(64, 250_000, 16, 65_507, 24_000_000)
  out.stateTransferMBPerSecondPacedTo24 = paced.mbPerSecond
  out.orderingCmdsPerSecondBeforePacedTransfer = paced.orderingCmdsPerSecondBefore
  out.orderingCmdsPerSecondDuringPacedTransfer = paced.orderingCmdsPerSecondDuringTransfer
  const small = await benchStateTransfer(16, 16_384, 16, 1_400)
  out.stateTransferMBPerSecondAt1400ByteDatagrams = small.mbPerSecond
  out.stateTransferPartsRetriedAt1400ByteDatagrams = small.partsRetried
  // Durable against in-memory ordering (the Order benchmark's phases: 3 replica processes on
  // UDP, total order, with LMDB storage and with memory storage).
  const previous = process.env.ORDER_BENCH_ONLY
  process.env.ORDER_BENCH_ONLY = 'total3,durable3'
  try {
    const order = await benchOrder()
    out.orderingCmdsPerSecondInMemory = order.total3CmdsPerSecond!
    out.orderingCmdsPerSecondDurable = order.total3DurableCmdsPerSecond!
    out.durableToInMemoryRatio =
      Math.round((order.total3DurableCmdsPerSecond! / order.total3CmdsPerSecond!) * 100) / 100
  } finally {
    if (previous === undefined) delete process.env.ORDER_BENCH_ONLY
    else process.env.ORDER_BENCH_ONLY = previous
  }
  // The machine's speed in the same run (raw node:dgram loopback, 64-byte datagrams).
  out.rawPps64 = Math.round((await rawUdpBaseline(64, 2000)).pps)
  return out
}
