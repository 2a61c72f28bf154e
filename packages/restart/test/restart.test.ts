import { divider } from '@consul/divider'
import { totalOrder } from '@consul/order-total'
import { psync } from '@consul/psync'
import { dist, Simulation } from '@consul/sim'
import { ORDER, stack, XKernelError } from '@consul/xkernel'
import { describe, expect, it } from 'vitest'
import { openOrRecover, RESTART, recoverReady, restart } from '../src/index.js'

const text = (s: string) => new TextEncoder().encode(s)
const g = { port: 'g', members: ['n1', 'n2', 'n3'] }

async function cluster() {
  const sim = new Simulation({
    seed: 3,
    nodes: 3,
    stack: stack()
      .use(psync({ logEveryMs: 1 }))
      .use(divider())
      .use(totalOrder({ ackDelayMs: 1 }))
      .use(restart()),
    network: { delay: dist.uniform(0.5, 2) },
    // What an application does at every start: open its groups, or recover them.
    onRestart: async (host) => {
      await openOrRecover(host, [g, { port: 'h', members: ['n1', 'n2', 'n3'] }])
    },
  })
  await sim.start()
  for (const n of sim.nodes) await openOrRecover(sim.host(n), [g])
  return sim
}

describe('Restart', () => {
  it('openOrRecover opens afresh the first time, then re-creates from storage; incarnations count up', async () => {
    const sim = await cluster()
    const control = () => sim.host('n2').group('g')!.get(RESTART)
    expect([control().incarnation(), control().restoring()]).toEqual([1, false])
    sim.at(5, () => void sim.host('n1').group('g')!.get(ORDER).submit(text('before')))
    await sim.run({ until: 100 })
    for (let i = 2; i <= 3; i++) {
      sim.crash('n2')
      await sim.restart('n2')
      expect([control().incarnation(), control().restoring()]).toEqual([i, true])
      await sim.run({ for: 100 })
    }
    // The configured group that was not recorded ('h') was opened afresh at the first restart
    // and recovered at the second.
    const h = sim.host('n2').group('h')!.get(RESTART)
    expect([h.incarnation(), h.restoring()]).toEqual([2, true])
    // Sessions in the paper's order: Psync first, then the protocols above it.
    expect(
      sim
        .host('n2')
        .describe()
        .sessions.filter((s) => s.group === 'g')
        .map((s) => s.protocol),
    ).toEqual(['psync', 'divider', 'order-total', 'restart'])
    expect(sim.host('n2').stats().restart).toMatchObject({ restored: 2 })
  })

  it('bad arguments throw INVALID_ARGUMENT', async () => {
    const sim = await cluster()
    const host = sim.host('n1')
    await expect(openOrRecover(host, 'g' as never)).rejects.toThrow(XKernelError)
    await expect(openOrRecover(host, [null as never])).rejects.toThrow(/each group/)
    await expect(openOrRecover(host, [g, g])).rejects.toThrow(/listed twice/)
    await expect(recoverReady(host, [g], { maxRestarts: -1 })).rejects.toThrow(/maxRestarts/)
  })

  it('recoverReady returns a group without Recovery as opened; group.restart() re-creates its sessions from storage in place', async () => {
    const sim = await cluster()
    const host = sim.host('n3')
    await host.group('g')!.close()
    const [group] = await recoverReady(host, [g])
    expect(group!.get(RESTART).incarnation()).toBe(2) // closed and opened again: one more
    sim.at(5, () => void group!.get(ORDER).submit(text('kept')))
    await sim.run({ until: 100 })
    let again: typeof group
    sim.at(110, async () => {
      again = await group!.restart()
    })
    await sim.run({ until: 200 })
    expect(again!.restoring).toBe(true)
    expect([again!.get(RESTART).incarnation(), again!.get(RESTART).restoring()]).toEqual([3, true])
    expect(host.group('g')).toBe(again)
    // The old handle is closed; the record stays, so a crash now recovers the group.
    expect(() => group!.get(ORDER).submit(text('x'))).toThrow()
    expect(host.storedGroups().map((s) => s.port)).toContain('g')
  })
})
