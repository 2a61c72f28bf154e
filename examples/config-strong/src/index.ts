/**
 * @packageDocumentation
 * The **strong configuration** (DESIGN §5): Psync, the Divider, Failure Detection,
 * Membership, an Order, the Dispatcher with the application's state machine, and Recovery —
 * agreed views, each decided by a majority of the previous one (a minority side stops
 * ordering); typed commands; a crashed replica restarts from its coordinated checkpoint and
 * rejoins (or, with no usable checkpoint, fetches one from a live member first); Restart
 * counts incarnations (open the groups with `recoverReady` or `openOrRecover` from
 * `@consul/restart`).
 */

import { dispatcher, type StateMachine } from '@consul/dispatcher'
import { divider } from '@consul/divider'
import { failureDetection } from '@consul/failure-detection'
import { membership } from '@consul/membership'
import { semanticOrder } from '@consul/order-semantic'
import { totalOrder } from '@consul/order-total'
import { psync } from '@consul/psync'
import { recovery } from '@consul/recovery'
import { restart } from '@consul/restart'
import { stack } from '@consul/xkernel'

export interface StrongOptions<S> {
  /** The application: a `stateMachine(…)` from `@consul/dispatcher`. */
  // biome-ignore lint/suspicious/noExplicitAny: any command set of the machine
  readonly machine: StateMachine<S, any>
  /** Failure Detection's timeout (ms, default 150). */
  readonly suspectAfterMs?: number
  /** `'total'` (default), or a semantic order from the application's commutativity classes. */
  readonly order?: 'total' | { readonly classOf: (command: Uint8Array) => number }
  /** Waves between two coordinated checkpoints (default 64). */
  readonly checkpointEveryWaves?: number
}

/** The strong stack: start it with `.start({ transport, storage })`. */
export function strongStack<S>(options: StrongOptions<S>) {
  const order = options.order ?? 'total'
  return stack()
    .use(psync())
    .use(divider())
    .use(failureDetection({ suspectAfterMs: options.suspectAfterMs ?? 150 }))
    .use(membership())
    .use(order === 'total' ? totalOrder() : semanticOrder({ classOf: order.classOf }))
    .use(dispatcher({ machine: options.machine }))
    .use(recovery({ checkpointEveryWaves: options.checkpointEveryWaves ?? 64 }))
    .use(restart())
}
