/** A probe protocol that subscribes through the Divider at open and records what it gets. */

import { psync } from '@consul/psync'
import { psyncCheckers } from '@consul/psync/checkers'
import { dist, noCreation, noDuplication, Simulation } from '@consul/sim'
import {
  type Channel,
  DIVIDER,
  defineProtocol,
  type HeardFrom,
  PSYNC,
  type PsyncMessage,
  stack,
} from '@consul/xkernel'
import { dividerCheckers } from '../src/checkers.js'
import { divider } from '../src/index.js'
import type { DividerSession } from '../src/session.js'

export interface ProbeLog {
  delivered: string[]
  waves: [number, string[]][]
  heard: HeardFrom[]
}

/** `logs.get('<node>#<incarnation-order>/<who>')` — one log per open of the probe. */
export function probe(
  who: string,
  channels: readonly Channel[],
  logs: Map<string, ProbeLog[]>,
  options: {
    acknowledgements?: boolean
    deliver?: boolean
    wave?: boolean
    observe?: boolean
  } = {},
) {
  return defineProtocol({
    name: who,
    requires: [DIVIDER],
    create: () => ({
      open(ctx) {
        const log: ProbeLog = { delivered: [], waves: [], heard: [] }
        const key = `${ctx.self}/${who}`
        logs.set(key, [...(logs.get(key) ?? []), log])
        const d = ctx.get(DIVIDER)
        d.subscribe(who, {
          channels,
          ...(options.acknowledgements === undefined
            ? {}
            : { acknowledgements: options.acknowledgements }),
          ...(options.deliver === false
            ? {}
            : { deliver: (m: PsyncMessage) => void log.delivered.push(m.id) }),
          ...(options.wave === false
            ? {}
            : {
                wave: (w: number, ms: readonly PsyncMessage[]) =>
                  void log.waves.push([w, ms.map((m) => m.id)]),
              }),
        })
        if (options.observe === true) d.observe((h) => void log.heard.push(h))
        return { controls: {} }
      },
    }),
  })
}

/** A Divider built on a (possibly broken) session class. */
export function dividerWith(Session: new (ctx: never) => DividerSession) {
  return defineProtocol({
    name: 'divider',
    requires: [PSYNC],
    provides: [DIVIDER],
    raises: ['trace.record'],
    create: () => ({
      open(ctx) {
        const session = new Session(ctx as never)
        return { controls: { divider: session.control }, close: () => session.close() }
      },
    }),
  })
}

export const allCheckers = [noCreation, noDuplication, ...psyncCheckers, ...dividerCheckers]

export async function cluster(
  protocols: (logs: Map<string, ProbeLog[]>) => ReturnType<typeof probe>[],
  options: { seed?: number; loss?: number; dividerFactory?: ReturnType<typeof divider> } = {},
) {
  const logs = new Map<string, ProbeLog[]>()
  let s = stack()
    .use(psync({ logEveryMs: 1 }))
    .use(options.dividerFactory ?? divider())
  for (const p of protocols(logs)) s = s.use(p) as never
  const sim = new Simulation({
    seed: options.seed ?? 1,
    nodes: 3,
    stack: s,
    network: { delay: dist.uniform(1, 4), ...(options.loss ? { loss: options.loss } : {}) },
  })
  await sim.start()
  await sim.openAll({ port: 'g' })
  const conv = (node: string) => sim.host(node).group('g')!.get(PSYNC)
  return { sim, conv, logs }
}
