/**
 * Simulator speed: simulated events per second of wall time, for a no-op workload (every
 * host re-arms a timer that does nothing: the cost of the agenda itself) and for a
 * flooding broadcast (timers, network sends with loss and duplication, deliveries).
 */
import { dist, Simulation } from '@consul/sim'
import { capability, defineProtocol, MessageBuffer, stack } from '@consul/xkernel'
import { rawUdpBaseline } from './raw-udp.js'

const TICK = capability<'tick', { readonly ticks: number }>('tick')

const ticker = defineProtocol({
  name: 'ticker',
  provides: [TICK],
  create: () => ({
    open(ctx) {
      const state = { ticks: 0 }
      const tick = () => {
        state.ticks++
        ctx.clock.setTimer(1, tick)
      }
      ctx.clock.setTimer(1, tick)
      return { controls: { tick: state } }
    },
  }),
})

const FLOOD = capability<'flood', { send(): void }>('flood')

const flood = defineProtocol({
  name: 'flood',
  provides: [FLOOD],
  create: () => ({
    open(ctx) {
      const net = ctx.claimNetwork()
      const seen = new Set<number>()
      let seq = 0
      const self = ctx.group.members.indexOf(ctx.self)
      net.onReceive((_from, msg) => {
        const id = msg.popUvarint()
        if (seen.has(id)) return
        seen.add(id)
        net.broadcast(MessageBuffer.empty(16).pushUvarint(id))
      })
      return {
        controls: {
          flood: {
            send() {
              const id = ++seq * 64 + self
              seen.add(id)
              net.broadcast(MessageBuffer.empty(16).pushUvarint(id))
            },
          },
        },
      }
    },
  }),
})

async function measure(build: () => Promise<Simulation>, untilMs: number) {
  const sim = await build()
  const started = performance.now()
  await sim.run({ until: untilMs })
  const wallMs = performance.now() - started
  const events = sim.stats().events
  return { events, wallMs, eventsPerSecond: Math.round(events / (wallMs / 1000)) }
}

export async function benchSim(): Promise<Record<string, number>> {
  // Warm up the JIT on a short run first.
  const noop = async () => {
    const sim = new Simulation({ seed: 1, nodes: 5, stack: stack().use(ticker) })
    await sim.start()
    await sim.openAll({ port: 'noop' })
    return sim
  }
  await measure(noop, 20_000)
  const idle = await measure(noop, 400_000)

  const flooding = async () => {
    const sim = new Simulation({
      seed: 2,
      nodes: 5,
      stack: stack().use(flood),
      network: { delay: dist.uniform(0.5, 3), loss: 0.05, duplicate: 0.02 },
    })
    await sim.start()
    await sim.openAll({ port: 'flood' })
    sim.every(1, 20_000, () => {
      for (const node of sim.nodes) sim.host(node).group('flood')!.get(FLOOD).send()
    })
    return sim
  }
  await measure(flooding, 1_000)
  const busy = await measure(flooding, 20_000)
  const raw = await rawUdpBaseline(64, 2000)
  return {
    eventsPerSecond: idle.eventsPerSecond,
    noopEvents: idle.events,
    floodEventsPerSecond: busy.eventsPerSecond,
    floodEvents: busy.events,
    rawPps64: raw.pps,
  }
}
