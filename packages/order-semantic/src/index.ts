/**
 * @packageDocumentation
 * `@consul/order-semantic` — semantic-dependent order for Consul: the application says which
 * commands commute (`classOf(command)` → a class rank); commands of the same class may run in
 * any order, commands of different classes run in the same relative order at every replica.
 * Rank-0 commands are delivered early, as soon as the waves before theirs are delivered;
 * the others when their wave is complete, in `(wave, class rank, sender)` order. Or by keys
 * (`keysOf(command)` → `{ keys, write }` or `'all'`): commands on different keys commute, and
 * any command may go early once every conflicting command before it is known and delivered. Implements
 * the Order specification v2 from `@consul/xkernel` (`ORDER`, `OrderControl`, semantics
 * `'semantic'`); requires `psync` and `divider` (it takes its messages through the Divider).
 *
 * @example
 * ```ts
 * import { divider } from '@consul/divider'
 * import { psync } from '@consul/psync'
 * import { semanticOrder } from '@consul/order-semantic'
 * import { ORDER, stack } from '@consul/xkernel'
 *
 * // byte 0 of a command is its operation: 0 = insert (commute), 1 = delete, 2 = update
 * const classOf = (command: Uint8Array) => command[0] ?? 0
 * const host = await stack().use(psync()).use(divider()).use(semanticOrder({ classOf })).start({ transport, storage })
 * const group = await host.open({ port: 'directory', members: ['a', 'b', 'c'] })
 * const order = group.get(ORDER)
 * order.onDeliver((c) => apply(c.command))   // non-commuting commands in the same order everywhere
 * await order.submit(Uint8Array.of(0, ...new TextEncoder().encode('users/ann')))
 * ```
 */

import { resolveOptions, type SemanticOrderOptions } from './options.js'
import { semanticOrderProtocol } from './protocol.js'

// The one `OrderError` of the Orders (`@consul/xkernel/order`): the same class object as
// `@consul/order-total`'s, so `OrderError.isInstance(e)` or `instanceof` works for either.
export { OrderError, type OrderErrorCode } from '@consul/xkernel/order'
export { conflict } from './keys.js'
export type { ClassOf, CommandKeys, KeysOf, SemanticOrderOptions } from './options.js'

/**
 * The semantic-dependent Order: provides `order` (semantics `'semantic'`), requires `psync` and
 * `divider`. Commutativity by classes (`classOf`) or by keys (`keysOf`), exactly one of them.
 */
export function semanticOrder(options: SemanticOrderOptions) {
  return semanticOrderProtocol(resolveOptions(options))
}
