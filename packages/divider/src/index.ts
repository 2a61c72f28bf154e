/**
 * @packageDocumentation
 * `@consul/divider` — the paper's Divider: Psync hands every delivered message to it, and it
 * passes each to the protocols subscribed to the message's channel (the first payload byte;
 * channels are registered with `defineChannel` in `@consul/xkernel`), each complete wave to
 * every wave subscriber with the wave's messages on its channels, and every datagram heard
 * from a member to the observers (Failure Detection's evidence of life). It never touches
 * outgoing messages. Provides `DIVIDER` (`DividerControl`), requires `PSYNC`.
 *
 * @example
 * ```ts
 * import { DIVIDER, MEMBERSHIP_CHANNEL, stack } from '@consul/xkernel'
 * import { psync } from '@consul/psync'
 * import { divider } from '@consul/divider'
 *
 * const host = await stack().use(psync()).use(divider()).start({ transport, storage })
 * const group = await host.open({ port: 'g', members: ['a', 'b', 'c'] })
 * group.get(DIVIDER).subscribe('my-protocol', {
 *   channels: [MEMBERSHIP_CHANNEL],
 *   deliver: (m) => console.log(m.sender, m.payload),
 * })
 * ```
 */
import { DIVIDER, defineProtocol, PSYNC } from '@consul/xkernel'
import { DividerSession } from './session.js'
import './trace.js'

export type { ChannelSubscription, DividerControl } from '@consul/xkernel'

/** The Divider protocol factory: provides `DIVIDER`, requires `PSYNC`. It takes no options. */
export function divider() {
  return defineProtocol({
    name: 'divider',
    requires: [PSYNC],
    provides: [DIVIDER],
    raises: ['trace.record'],
    create: () => ({
      open(ctx) {
        const session = new DividerSession(ctx)
        return {
          controls: { divider: session.control },
          close: () => session.close(),
        }
      },
    }),
  })
}
