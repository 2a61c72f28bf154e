/**
 * @packageDocumentation
 * `@consul/recovery` — Consul's **Recovery**: one coordinated checkpoint (every protocol
 * session's state and the application's, with the wave, in one storage batch), restart from
 * it with a passive replay of the rest of the log, rejoining the view with `up(self)`, and
 * Psync's prune floor — the lowest checkpoint over the view — so the log stays bounded; state
 * transfer from a live member; and joins (`joinGroup`): a new member, or an excluded one, comes
 * into the running group as its next configuration.
 *
 * Requires Psync, an Order, Membership (a strong membership service: the weak configuration
 * has none, and Recovery does not compile on it) and Failure Detection; provides `RECOVERY`
 * (`RecoveryControl`, defined in `@consul/xkernel`); raises `recovery.started` /
 * `recovery.finished` (Failure Detection lengthens its timeouts for a recovering member; the
 * Dispatcher refuses new commands while this replica recovers).
 *
 * @example
 * ```ts
 * const host = await stack()
 *   .use(psync())
 *   .use(divider())
 *   .use(failureDetection())
 *   .use(membership())
 *   .use(totalOrder())
 *   .use(dispatcher({ machine }))
 *   .use(recovery({ checkpointEveryWaves: 64 }))
 *   .start({ transport, storage })
 * // After a crash: host.recoverGroups() — Recovery restores the newest checkpoint first.
 * await host.group('g')!.get(RECOVERY).ready()
 * ```
 */
import {
  defineProtocol,
  FAILURE_DETECTION,
  MEMBERSHIP,
  maxGauges,
  ORDER,
  PSYNC,
  RECOVERY,
} from '@consul/xkernel'
import { type RecoveryOptions, resolveOptions } from './options.js'
import { RecoverySession } from './session.js'

export type { CheckpointRecord } from './codec.js'
export { decodeCheckpoint, encodeCheckpoint } from './codec.js'
export { type JoinSpec, joinGroup } from './join-group.js'
export type { RecoveryOptions } from './options.js'
export { damageCheckpoints } from './store.js'

/** The Recovery factory. Bad options throw `XKernelError('INVALID_ARGUMENT')`. */
export function recovery(options: RecoveryOptions = {}) {
  const resolved = resolveOptions(options)
  return defineProtocol({
    name: 'recovery',
    requires: [PSYNC, ORDER, MEMBERSHIP, FAILURE_DETECTION],
    provides: [RECOVERY],
    raises: ['recovery.started', 'recovery.finished'],
    create: () => {
      const sessions = new Set<RecoverySession>()
      return {
        open(ctx) {
          const session = new RecoverySession(ctx, resolved)
          sessions.add(session)
          return {
            controls: { recovery: session.control },
            start: () => session.start(),
            close: () => {
              sessions.delete(session)
              session.close()
            },
          }
        },
        stats: () => maxGauges(sessions),
      }
    },
  })
}
