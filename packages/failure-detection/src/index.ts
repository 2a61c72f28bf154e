/**
 * @packageDocumentation
 * `@consul/failure-detection` — Consul's Failure Detection. It suspects a member from which
 * nothing has been heard for a while — any datagram or message, through the Divider's
 * observer — with timeouts that adapt to declared events (Psync retransmitting, Recovery,
 * Membership deciding) and to this replica's own health (its timers running late), and it
 * sends an alive message after a quiet spell. Every suspicion carries its reason. Alone it is
 * the *weak* membership service (a suspicion masks the member out here); under
 * `@consul/membership` it only reports, and Membership decides. Provides `FAILURE_DETECTION`,
 * requires `PSYNC` and `DIVIDER`.
 *
 * @example
 * ```ts
 * const host = await stack()
 *   .use(psync())
 *   .use(divider())
 *   .use(failureDetection({ suspectAfterMs: 150 }))
 *   .use(totalOrder())
 *   .start({ transport, storage })
 * ```
 */
import { DIVIDER, defineProtocol, FAILURE_DETECTION, maxGauges, PSYNC } from '@consul/xkernel'
import { FailureDetectorSession } from './detector.js'
import { type FailureDetectionOptions, resolveOptions } from './options.js'
import './trace.js'

export type { FailureDetectionControl, Suspicion, SuspicionReason } from '@consul/xkernel'
export { decodeAlive, encodeAlive } from './alive.js'
export { LocalHealth } from './health.js'
export type { FailureDetectionOptions } from './options.js'

/** The Failure Detection factory. Bad options throw `XKernelError('INVALID_ARGUMENT')`. */
export function failureDetection(options: FailureDetectionOptions = {}) {
  const resolved = resolveOptions(options)
  return defineProtocol({
    name: 'failure-detection',
    requires: [PSYNC, DIVIDER],
    provides: [FAILURE_DETECTION],
    raises: ['trace.record'],
    observes: [
      'psync.retransmitting',
      'recovery.started',
      'recovery.finished',
      'membership.deciding',
    ],
    create: () => {
      const sessions = new Set<FailureDetectorSession>()
      return {
        open(ctx) {
          const session = new FailureDetectorSession(ctx, resolved)
          sessions.add(session)
          return {
            controls: { 'failure-detection': session.control },
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
