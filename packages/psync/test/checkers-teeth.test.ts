/**
 * Checkers with teeth: each Psync checker (and the simulator's no-creation and
 * no-duplication) is shown rejecting a deliberately broken Psync. The broken ones are the real
 * Psync with one fault injected — into what it reports (a wave skipped, two deliveries
 * swapped, a delivery repeated or hidden, stability claimed too early, a wave's contents
 * changed), or into its disk (a log that forgets its own messages, so the restarted member
 * reuses ids) — and a clean run of the same scenario passes every checker.
 */
import { type Checker, dist, noCreation, noDuplication, Simulation } from '@consul/sim'
import {
  type ConsulEvents,
  type EventName,
  PSYNC,
  type PsyncControl,
  type SessionEvents,
  stack,
} from '@consul/xkernel'
import { describe, expect, it } from 'vitest'
import { atomicDelivery, causalOrder, stabilitySafety, waveAgreement } from '../src/checkers.js'
import { psync } from '../src/index.js'

type Emit = SessionEvents['emit']
/** Rewrites what one node's Psync reports: call `emit` zero or more times for each event. */
type Fault = (node: string, name: EventName, payload: unknown, emit: Emit) => void

/** The real Psync, with `fault` between it and the event bus. */
function brokenPsync(fault: Fault) {
  const real = psync({ logEveryMs: 1 })
  return {
    ...real,
    create: (pctx: Parameters<typeof real.create>[0]) => {
      const inner = real.create(pctx)
      return {
        ...inner,
        open: (ctx: Parameters<typeof inner.open>[0]) =>
          inner.open({
            ...ctx,
            events: {
              ...ctx.events,
              emit: ((name, payload) => fault(ctx.self, name, payload, ctx.events.emit)) as Emit,
            },
          }),
      }
    },
  }
}

const passThrough: Fault = (_node, name, payload, emit) =>
  emit(name, payload as ConsulEvents[typeof name])

const all: readonly Checker[] = [
  noCreation,
  noDuplication,
  causalOrder,
  atomicDelivery,
  stabilitySafety,
  waveAgreement,
]

/** Three members send one message per wave for 20 waves, then fall quiet. */
type Caps = { psync: PsyncControl }

async function run(fault: Fault, tamper?: (sim: Simulation<Caps>) => Promise<void>) {
  const sim = new Simulation<Caps>({
    seed: 7,
    nodes: 3,
    stack: stack().use(brokenPsync(fault)),
    network: { delay: dist.constant(1) },
  })
  await sim.start()
  await sim.openAll({ port: 'g' })
  const conv = (n: string) => sim.host(n).group('g')!.get(PSYNC)
  for (let i = 0; i < 20; i++)
    sim.at(1 + i * 10, () => {
      for (const n of sim.nodes) conv(n).send(new TextEncoder().encode(`${n}.${i}`))
    })
  await sim.run({ until: 400 })
  await tamper?.(sim)
  return sim
}

/** The checkers that flag the run, by name. */
function flagged(sim: Simulation<Caps>): string[] {
  return [...new Set(sim.check(all).map((v) => v.checker))].sort()
}

describe('Psync checkers reject a broken Psync', () => {
  it('a clean run passes every checker (the baseline of the cases below)', async () => {
    expect(flagged(await run(passThrough))).toEqual([])
  })

  it('skipping a wave at one node: wave agreement', async () => {
    const sim = await run((node, name, payload, emit) => {
      if (name === 'trace.wave' && node === 'n2' && (payload as { wave: number }).wave === 5) return
      passThrough(node, name, payload, emit)
    })
    expect(flagged(sim)).toEqual(['psync-wave-agreement'])
    expect(sim.check([waveAgreement]).map((v) => v.message)).toEqual([
      'n2 (incarnation 0) saw wave 6 of g complete right after wave 4',
      'wave 5 of g completed at n1 but never at n2',
    ])
  })

  it('other contents in a wave at one node: wave agreement', async () => {
    const sim = await run((node, name, payload, emit) => {
      const wave = payload as ConsulEvents['trace.wave']
      if (name === 'trace.wave' && node === 'n3' && wave.wave === 2)
        emit('trace.wave', { ...wave, ids: wave.ids.slice(1) })
      else passThrough(node, name, payload, emit)
    })
    expect(flagged(sim)).toEqual(['psync-wave-agreement'])
  })

  it('two deliveries swapped (a message before its predecessor): causal order', async () => {
    let held: ConsulEvents['trace.delivered'] | undefined
    const sim = await run((node, name, payload, emit) => {
      const d = payload as ConsulEvents['trace.delivered']
      if (name === 'trace.delivered' && node === 'n3' && d.id === 'n1:3') {
        held = d
        return
      }
      passThrough(node, name, payload, emit)
      // n1:4 (which builds on n1:3) reported first, then n1:3.
      if (name === 'trace.delivered' && node === 'n3' && d.id === 'n1:4' && held !== undefined) {
        emit('trace.delivered', held)
        held = undefined
      }
    })
    // (Stability safety notices too: n3's delivery of n1:3 is now reported late.)
    expect(flagged(sim)).toContain('psync-causal-order')
    expect(sim.check([causalOrder]).map((v) => v.message)).toContain(
      'n3 (incarnation 0) delivered n1:4 before its predecessor n1:3',
    )
  })

  it('a message delivered twice: no duplication', async () => {
    const sim = await run((node, name, payload, emit) => {
      passThrough(node, name, payload, emit)
      if (name === 'trace.delivered' && node === 'n2' && (payload as { id: string }).id === 'n3:4')
        passThrough(node, name, payload, emit)
    })
    expect(flagged(sim)).toEqual(['no-duplication'])
  })

  it('a message one node never delivers: atomic delivery', async () => {
    const sim = await run((node, name, payload, emit) => {
      if (name === 'trace.delivered' && node === 'n2' && (payload as { id: string }).id === 'n1:9')
        return
      passThrough(node, name, payload, emit)
    })
    expect(flagged(sim)).toContain('psync-atomic-delivery')
  })

  it('stability claimed as soon as a message is sent: stability safety', async () => {
    const sim = await run((node, name, payload, emit) => {
      passThrough(node, name, payload, emit)
      if (name === 'trace.sent' && node === 'n1')
        emit('trace.stable', { group: 'g', layer: 'psync', id: (payload as { id: string }).id })
    })
    expect(flagged(sim)).toEqual(['psync-stability-safety'])
    expect(sim.check([stabilitySafety])[0]!.message).toMatch(
      /n1 called n1:1 stable at 1, but n2,n3 of its agreed list had not delivered it/,
    )
  })

  it('a log that forgets its own messages makes the restarted member reuse ids: no creation', async () => {
    const sim = await run(passThrough, async (sim) => {
      sim.crash('n1')
      // Cut off until it has sent: no peer can tell it how far its messages went (a peer's
      // answer to the restart handshake would, and Psync would take its next seq above it).
      sim.network.isolate('n1')
      sim.at(sim.now + 200, () => sim.network.heal())
      // Everything n1 knew of its own messages is gone: records and high-water marks.
      const disk = sim.disk('n1')
      for (const { key, value } of [...disk.scan({ prefix: 'psync/g/' })]) {
        const own = key.includes('/m/') && value[1] === 0 // a DATA frame (kind 1) from member 0
        if (own || key.includes('/h/')) disk.delete(key)
      }
      await sim.restart('n1')
      sim.at(
        sim.now + 50,
        () =>
          void sim
            .host('n1')
            .group('g')!
            .get(PSYNC)
            .send(new Uint8Array([7])),
      )
      await sim.run({ for: 300 })
    })
    const reused = sim.check([noCreation]).map((v) => v.message)
    expect(reused.length).toBeGreaterThan(0)
    expect(reused[0]).toMatch(/stands for two contents/)
  })
})
