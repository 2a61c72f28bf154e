/** The protocol factory over resolved options (`semanticOrder` in `index.ts` resolves them). */
import { DIVIDER, defineProtocol, ORDER, PSYNC } from '@consul/xkernel'
import { orderCheckpointHooks } from '@consul/xkernel/order'
import type { ResolvedOptions } from './options.js'
import { SemanticOrderSession } from './session.js'

export function semanticOrderProtocol(resolved: ResolvedOptions) {
  return defineProtocol({
    name: 'order-semantic',
    requires: [PSYNC, DIVIDER],
    provides: [ORDER],
    raises: ['trace.sent', 'trace.delivered'],
    // Membership's verdict: no ordering outside the primary partition (`followPrimary`).
    observes: ['membership.primary'],
    create: () => ({
      open(ctx) {
        const session = new SemanticOrderSession(ctx, resolved)
        return {
          controls: { order: session.control },
          close: () => session.close(),
          ...orderCheckpointHooks(session.control),
        }
      },
    }),
  })
}
