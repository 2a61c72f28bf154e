/**
 * @packageDocumentation
 * `@consul/order-total` — a consistent total order for Consul (atomic broadcast with Psync):
 * complete waves delivered in order, each wave by sender id. Implements the Order
 * specification v2 from `@consul/xkernel` (`ORDER`, `OrderControl`); requires `psync` and
 * `divider` (it takes its messages through the Divider).
 *
 * @example
 * ```ts
 * import { divider } from '@consul/divider'
 * import { psync } from '@consul/psync'
 * import { totalOrder } from '@consul/order-total'
 * import { ORDER, stack } from '@consul/xkernel'
 *
 * const host = await stack().use(psync()).use(divider()).use(totalOrder({ ackDelayMs: 1 })).start({ transport, storage })
 * const group = await host.open({ port: 'bank', members: ['a', 'b', 'c'] })
 * const order = group.get(ORDER)
 * order.onDeliver((c) => apply(c.command))             // same sequence at every replica
 * await order.submit(new TextEncoder().encode('deposit 10'))
 * ```
 */

import { DIVIDER, defineProtocol, ORDER, PSYNC } from '@consul/xkernel'
import { orderCheckpointHooks } from '@consul/xkernel/order'
import { resolveOptions, type TotalOrderOptions } from './options.js'
import { TotalOrderSession } from './session.js'

// The one `OrderError` of the Orders (`@consul/xkernel/order`): the same class object as
// `@consul/order-semantic`'s, so `OrderError.isInstance(e)` or `instanceof` works for either.
export { OrderError, type OrderErrorCode } from '@consul/xkernel/order'
export type { TotalOrderOptions } from './options.js'

export function totalOrder(options: TotalOrderOptions = {}) {
  const resolved = resolveOptions(options)
  return defineProtocol({
    name: 'order-total',
    requires: [PSYNC, DIVIDER],
    provides: [ORDER],
    raises: ['trace.sent', 'trace.delivered'],
    // Membership's verdict: no ordering outside the primary partition (`followPrimary`).
    observes: ['membership.primary'],
    create: () => ({
      open(ctx) {
        const session = new TotalOrderSession(ctx, resolved)
        return {
          controls: { order: session.control },
          close: () => session.close(),
          ...orderCheckpointHooks(session.control),
        }
      },
    }),
  })
}
