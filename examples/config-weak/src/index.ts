/**
 * @packageDocumentation
 * The **weak configuration** (DESIGN §5): Psync, the Divider, Failure Detection, an Order, the
 * Dispatcher with the application's state machine, and Restart.
 * Each replica masks out whom *it* suspects; nothing agrees on views, and this package does
 * not even install `@consul/membership`. See `@consul/failure-detection`'s README for what
 * holds after a false suspicion.
 */

import { dispatcher, type StateMachine } from '@consul/dispatcher'
import { divider } from '@consul/divider'
import { failureDetection } from '@consul/failure-detection'
import { semanticOrder } from '@consul/order-semantic'
import { totalOrder } from '@consul/order-total'
import { psync } from '@consul/psync'
import { restart } from '@consul/restart'
import { stack } from '@consul/xkernel'

export interface WeakOptions<S> {
  /** The application: a `stateMachine(…)` from `@consul/dispatcher`. */
  // biome-ignore lint/suspicious/noExplicitAny: any command set of the machine
  readonly machine: StateMachine<S, any>
  /** Failure Detection's timeout (ms, default 150). */
  readonly suspectAfterMs?: number
  /** `'total'` (default), or a semantic order from the application's commutativity classes. */
  readonly order?: 'total' | { readonly classOf: (command: Uint8Array) => number }
}

/** The weak stack: start it with `.start({ transport, storage })`. */
export function weakStack<S>(options: WeakOptions<S>) {
  const order = options.order ?? 'total'
  return stack()
    .use(psync({ retainWaves: 64 }))
    .use(divider())
    .use(failureDetection({ suspectAfterMs: options.suspectAfterMs ?? 150 }))
    .use(order === 'total' ? totalOrder() : semanticOrder({ classOf: order.classOf }))
    .use(dispatcher({ machine: options.machine }))
    .use(restart())
}
