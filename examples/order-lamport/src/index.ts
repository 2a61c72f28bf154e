/**
 * @packageDocumentation
 * `consul-order-lamport` — a total order for Consul built on Lamport's logical clocks (the
 * paper's *time service*) instead of Psync's waves. Every command-bearing message carries
 * its sender's timestamp; a command is delivered once no member of the agreed list can
 * still send anything with a smaller (timestamp, sender) key, and commands are delivered by
 * (timestamp, sender, index). Implements the Order specification v2 from `@consul/xkernel`
 * (`ORDER`, `OrderControl`); requires `psync` and `divider`; depends on nothing else at
 * runtime (the application composes `@consul/psync` and `@consul/divider`).
 *
 * @example
 * ```ts
 * import { divider } from '@consul/divider'
 * import { psync } from '@consul/psync'
 * import { ORDER, stack } from '@consul/xkernel'
 * import { lamportOrder } from 'consul-order-lamport'
 *
 * // In place of .use(totalOrder()):
 * const host = await stack().use(psync()).use(divider()).use(lamportOrder()).start({ transport, storage })
 * const group = await host.open({ port: 'bank', members: ['a', 'b', 'c'] })
 * const order = group.get(ORDER)
 * order.onDeliver((c) => apply(c.command))             // same sequence at every replica
 * await order.submit(new TextEncoder().encode('deposit 10'))
 * ```
 */

import { DIVIDER, defineProtocol, ORDER, PSYNC } from '@consul/xkernel'
import { orderCheckpointHooks } from '@consul/xkernel/order'
import { type LamportOrderOptions, resolveOptions } from './options.js'
import { LamportOrderSession } from './session.js'

// The Orders' one error class, from `@consul/xkernel/order` (as order-total and
// order-semantic export it): an Order of your own can throw it too.
export { OrderError, type OrderErrorCode } from '@consul/xkernel/order'
export type { LamportOrderOptions } from './options.js'

/** The Lamport-clock Order protocol: requires `psync` and `divider`, provides `order` (specification v2). */
export function lamportOrder(options: LamportOrderOptions = {}) {
  const resolved = resolveOptions(options)
  return defineProtocol({
    name: 'order-lamport',
    requires: [PSYNC, DIVIDER],
    provides: [ORDER],
    raises: ['trace.sent', 'trace.delivered'],
    // Membership's verdict: no ordering outside the primary partition (`followPrimary`).
    observes: ['membership.primary'],
    create: () => ({
      open(ctx) {
        const session = new LamportOrderSession(ctx, resolved)
        return {
          controls: { order: session.control },
          close: () => session.close(),
          ...orderCheckpointHooks(session.control),
        }
      },
    }),
  })
}
