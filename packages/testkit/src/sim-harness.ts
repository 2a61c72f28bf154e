/**
 * A `TransportHarness` over `@consul/sim`'s network, lossless by default: the reference the
 * transport suite is checked against, and a ready harness for code that wants simulated
 * transports in tests.
 */
import { type LinkConfig, Simulation } from '@consul/sim'
import { type NodeId, stack } from '@consul/xkernel'
import type { TransportHarness } from './transport.js'

export async function simTransportHarness(
  ids: readonly NodeId[],
  options: { seed?: number; network?: Partial<LinkConfig> } = {},
): Promise<TransportHarness> {
  const sim = new Simulation({
    seed: options.seed ?? 1,
    nodes: ids,
    stack: stack(),
    ...(options.network === undefined ? {} : { network: options.network }),
  })
  await sim.start()
  const transports = ids.map((id) => sim.network.endpoint(id))
  return {
    transports,
    settle: async () => {
      await sim.run({ for: 1_000 })
    },
    close: async () => {
      for (const t of transports) await t.close()
    },
  }
}
