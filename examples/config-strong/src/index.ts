/**
 * @packageDocumentation
 * The **strong configuration** (DESIGN §5) as far as it exists today: Psync, the Divider,
 * Failure Detection, Membership and an Order — agreed views, each decided by a majority of
 * the previous one; a minority side stops ordering. (Recovery, the Dispatcher and Restart
 * join it with their packages.)
 */
import { divider } from '@consul/divider'
import { failureDetection } from '@consul/failure-detection'
import { membership } from '@consul/membership'
import { semanticOrder } from '@consul/order-semantic'
import { totalOrder } from '@consul/order-total'
import { psync } from '@consul/psync'
import { stack } from '@consul/xkernel'

export interface StrongOptions {
  /** Failure Detection's timeout (ms, default 150). */
  readonly suspectAfterMs?: number
  /** `'total'` (default), or a semantic order from the application's commutativity classes. */
  readonly order?: 'total' | { readonly classOf: (command: Uint8Array) => number }
}

/** The strong stack: start it with `.start({ transport, storage })`. */
export function strongStack(options: StrongOptions = {}) {
  const order = options.order ?? 'total'
  return stack()
    .use(psync({ retainWaves: 64 }))
    .use(divider())
    .use(failureDetection({ suspectAfterMs: options.suspectAfterMs ?? 150 }))
    .use(membership())
    .use(order === 'total' ? totalOrder() : semanticOrder({ classOf: order.classOf }))
}
