/**
 * Psync: causal-delivery throughput and CPU per message in the simulator; header bytes per
 * message at 5 members; the live graph over 1,000,000 messages with pruning (it must not
 * grow with the run); and over real UDP between 3 processes, with the raw-UDP baseline
 * measured in the same run.
 */
import { cpuUsage } from 'node:process'
import { psync } from '@consul/psync'
import { dist, Simulation } from '@consul/sim'
import { PSYNC, type PsyncMessage, stack, uvarintLength } from '@consul/xkernel'
import { psyncOverUdp } from './psync-udp.js'
import { rawUdpBaseline } from './raw-udp.js'

async function simCluster(nodes: number, retainWaves?: number) {
  const sim = new Simulation({
    seed: 42,
    nodes,
    stack: stack().use(
      psync({ logEveryMs: 2, ...(retainWaves === undefined ? {} : { retainWaves }) }),
    ),
    network: { delay: dist.uniform(0.2, 1) },
    record: false,
  })
  await sim.start()
  await sim.openAll({ port: 'bench' })
  return sim
}

const payload = new Uint8Array(64)

/** Messages delivered per wall second (counted once per message, at every member). */
async function simThroughput(): Promise<{ msgsPerSecond: number; cpuMicrosPerMessage: number }> {
  const sim = await simCluster(3)
  let sent = 0
  sim.every(0.1, 2_000, () => {
    const node = sim.nodes[sent % 3]!
    sim.host(node).group('bench')!.get(PSYNC).send(payload)
    sent++
  })
  const cpu = cpuUsage()
  const started = performance.now()
  await sim.run({ until: 2_500 })
  const wall = performance.now() - started
  const used = cpuUsage(cpu)
  return {
    msgsPerSecond: Math.round(sent / (wall / 1000)),
    cpuMicrosPerMessage: Math.round(((used.user + used.system) / sent) * 100) / 100,
  }
}

/** Average DATA header bytes at 5 members under an all-members-sending workload. */
async function headerBytesAt5(): Promise<number> {
  const sim = await simCluster(5)
  const members = sim.nodes
  const seen: PsyncMessage[] = []
  sim
    .host('n1')
    .group('bench')!
    .get(PSYNC)
    .onDeliver((m) => seen.push(m))
  sim.every(0.5, 3_000, () => {
    for (const n of members)
      if (sim.random.next() < 0.6) sim.host(n).group('bench')!.get(PSYNC).send(payload)
  })
  await sim.run({ until: 3_500 })
  let total = 0
  for (const m of seen) {
    // kind · sender · seq · ndeps · (member · seq)×ndeps, as the Psync README gives it.
    let header =
      1 +
      uvarintLength(members.indexOf(m.sender)) +
      uvarintLength(m.seq) +
      uvarintLength(m.deps.length)
    for (const id of m.deps) {
      const at = id.lastIndexOf(':')
      header +=
        uvarintLength(members.indexOf(id.slice(0, at))) + uvarintLength(Number(id.slice(at + 1)))
    }
    total += header
  }
  return Math.round((total / seen.length) * 10) / 10
}

/** Highest live graph size while 1,000,000 messages go through 3 members with pruning. */
async function liveGraph(
  total: number,
): Promise<{ maxLiveMessages: number; liveAtHalf: number; liveAtEnd: number }> {
  const sim = await simCluster(3, 8)
  let sent = 0
  let max = 0
  let half = 0
  const perTick = 3
  const ticks = Math.ceil(total / perTick)
  for (let t = 0; t < ticks; t += 10_000) {
    sim.every(0.05, sim.now + 10_000 * 0.05, () => {
      for (const n of sim.nodes) {
        if (sent >= total) return
        sim.host(n).group('bench')!.get(PSYNC).send(payload)
        sent++
      }
    })
    await sim.run({ for: 10_000 * 0.05 })
    const live = sim.host('n1').stats().psync!.liveMessages!
    if (live > max) max = live
    if (half === 0 && sent >= total / 2) half = live
  }
  await sim.run({ for: 1_000 })
  return {
    maxLiveMessages: max,
    liveAtHalf: half,
    liveAtEnd: sim.host('n1').stats().psync!.liveMessages!,
  }
}

export async function benchPsync(): Promise<Record<string, number>> {
  const throughput = await simThroughput()
  const headers = await headerBytesAt5()
  const graph = await liveGraph(1_000_000)
  const raw = await rawUdpBaseline(64, 2_000)
  const udp = await psyncOverUdp({ processes: 3, durationMs: 3_000 })
  return {
    udp3MsgsPerSecond: udp.msgsPerSecond,
    udp3CpuMicrosPerMessage: udp.cpuMicrosPerMessage,
    rawPps64: raw.pps,
    simMsgsPerSecond: throughput.msgsPerSecond,
    simCpuMicrosPerMessage: throughput.cpuMicrosPerMessage,
    headerBytesAt5: headers,
    maxLiveMessages: graph.maxLiveMessages,
    liveAtHalf: graph.liveAtHalf,
    liveAtEnd: graph.liveAtEnd,
  }
}
