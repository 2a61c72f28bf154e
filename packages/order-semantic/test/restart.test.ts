/** After a crash: the replay is applied from scratch, and replayed commands are acknowledged. */
import { divider } from '@consul/divider'
import { psync } from '@consul/psync'
import { dist, Simulation } from '@consul/sim'
import {
  type DividerControl,
  type NodeId,
  ORDER,
  type OrderControl,
  type PsyncControl,
  stack,
} from '@consul/xkernel'
import { describe, expect, it } from 'vitest'
import { semanticOrder } from '../src/index.js'

const classOf = (command: Uint8Array) => command[0]!
type Caps = { psync: PsyncControl; divider: DividerControl; order: OrderControl }

describe('restart', () => {
  it('acknowledges a replayed command whose acknowledgement the crash took away', async () => {
    const delivered: string[] = []
    const record = (node: NodeId, incarnation: number) =>
      sim
        .host(node)
        .group('g')!
        .get(ORDER)
        .onDeliver((c) => delivered.push(`${node}/${incarnation} ${c.id}`))
    // A slow acknowledgement and a fast log: n1 logs n2's command, then crashes before it
    // acknowledges. n2's wave needs n1 to pass it, and nobody else has anything to send.
    const sim: Simulation<Caps> = new Simulation<Caps>({
      seed: 5,
      nodes: 3,
      stack: stack()
        .use(psync({ logEveryMs: 1 }))
        .use(divider())
        .use(semanticOrder({ classOf, ackDelayMs: 30 })),
      network: { delay: dist.constant(2) },
      onRestart: async (host, node) => {
        await host.recoverGroups()
        record(node, 1)
      },
    })
    await sim.start()
    await sim.openAll({ port: 'g' })
    for (const node of sim.nodes) record(node, 0)
    sim.at(10, () => void sim.host('n2').group('g')!.get(ORDER).submit(Uint8Array.of(1, 7)))
    sim.at(20, () => sim.crash('n1'))
    sim.at(100, async () => void (await sim.restart('n1')))
    await sim.run({ until: 600 })
    expect(delivered.sort()).toEqual(['n1/1 n2:1/0', 'n2/0 n2:1/0', 'n3/0 n2:1/0'])
  })
})
