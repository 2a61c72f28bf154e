/**
 * @packageDocumentation
 * `@consul/psync` — Psync conversations for Consul: a context graph of the messages a group
 * exchanges, causal and atomic delivery, stability, waves, membership-list masks and
 * exclusion with a cut, pruning, a write-ahead message log and the restart handshake. It
 * provides the `psync` capability (`PsyncControl` from `@consul/xkernel`).
 *
 * @example
 * ```ts
 * import { PSYNC, stack } from '@consul/xkernel'
 * import { psync } from '@consul/psync'
 *
 * const host = await stack().use(psync({ logEveryMs: 5 })).start({ transport, storage })
 * const group = await host.open({ port: 'chat', members: ['a', 'b', 'c'] })
 * const conversation = group.get(PSYNC)
 * conversation.onDeliver((m) => console.log(m.sender, new TextDecoder().decode(m.payload)))
 * conversation.send(new TextEncoder().encode('hello'))
 * ```
 */
import { defineProtocol, PSYNC } from '@consul/xkernel'
import { type PsyncOptions, resolveOptions } from './options.js'
import { PsyncSession } from './session.js'

export { PsyncError, type PsyncErrorCode } from './errors.js'
export type { PsyncOptions } from './options.js'

/** The Psync protocol factory: provides `PSYNC`, requires nothing. */
export function psync(options: PsyncOptions = {}) {
  const resolved = resolveOptions(options)
  return defineProtocol({
    name: 'psync',
    provides: [PSYNC],
    raises: [
      'trace.sent',
      'trace.delivered',
      'trace.stable',
      'trace.wave',
      'trace.view',
      'psync.retransmitting',
    ],
    create: () => {
      const sessions = new Set<PsyncSession>()
      return {
        open(ctx) {
          const session = new PsyncSession(ctx, resolved)
          sessions.add(session)
          return {
            controls: { psync: session.control },
            start: () => session.start(),
            close: async () => {
              sessions.delete(session)
              await session.close()
            },
          }
        },
        stats: () => {
          const out: Record<string, number> = {}
          for (const s of sessions) {
            for (const [k, v] of Object.entries(s.gauges())) out[k] = (out[k] ?? 0) + v
          }
          return out
        },
      }
    },
  })
}
