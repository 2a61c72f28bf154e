import { divider } from '@consul/divider'
import { failureDetection } from '@consul/failure-detection'
import { totalOrder } from '@consul/order-total'
import { psync } from '@consul/psync'
import { dist, Simulation } from '@consul/sim'
import { MEMBERSHIP, ORDER, type OrderedCommand, PSYNC, stack, type ViewChange } from '@consul/xkernel'
import { describe, expect, it } from 'vitest'
import { primaryPartition, viewAgreement } from '../src/checkers.js'
import { membership } from '../src/index.js'

const text = (s: string) => new TextEncoder().encode(s)
const str = (c: OrderedCommand) => new TextDecoder().decode(c.command)

async function cluster(seed = 1, nodes = 3) {
  const sim = new Simulation({
    seed,
    nodes,
    stack: stack()
      .use(psync({ logEveryMs: 1, retainWaves: 64 }))
      .use(divider())
      .use(failureDetection({ suspectAfterMs: 150 }))
      .use(membership())
      .use(totalOrder({ ackDelayMs: 1 })),
    network: { delay: dist.uniform(0.5, 2) },
  })
  await sim.start()
  await sim.openAll({ port: 'g' })
  const group = (n: string) => sim.host(n).group('g')!
  const changes = new Map<string, ViewChange[]>(sim.nodes.map((n) => [n, []]))
  const delivered = new Map<string, string[]>(sim.nodes.map((n) => [n, []]))
  for (const n of sim.nodes) {
    group(n).get(MEMBERSHIP).onViewChange((c) => void changes.get(n)!.push(c))
    group(n)
      .get(ORDER)
      .onDeliver((c) => void delivered.get(n)!.push(str(c)))
  }
  const check = () =>
    sim.check([viewAgreement, primaryPartition({ g: sim.nodes })])
  return { sim, group, changes, delivered, check }
}

describe('strong configuration', () => {
  it('a crashed member is excluded by an agreed view and ordering resumes', async () => {
    const { sim, group, changes, delivered, check } = await cluster()
    sim.at(100, () => void group('n1').get(ORDER).submit(text('before')))
    sim.at(300, () => sim.crash('n3'))
    sim.at(310, () => void group('n1').get(ORDER).submit(text('after')))
    await sim.run({ until: 1500 })
    for (const n of ['n1', 'n2']) {
      const [c, ...more] = changes.get(n)!
      expect(more).toEqual([])
      expect(c!.view).toEqual({ id: 1, members: ['n1', 'n2'] })
      expect(c!.left).toEqual(['n3'])
      expect(c!.reason.kind).toBe('failure')
      expect(group(n).get(PSYNC).members()).toEqual(['n1', 'n2'])
      expect(delivered.get(n)).toEqual(['before', 'after'])
    }
    expect(check()).toEqual([])
  })
})
