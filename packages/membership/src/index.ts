/**
 * @packageDocumentation
 * `@consul/membership` — Consul's Membership: with Failure Detection below it, the *strong*
 * membership service. The replicas agree on a sequence of views: a suspicion is reported
 * (`down`), answered by every member (`ackDown`, or `nackDown` from one that has newer news
 * of the suspect), and decided by a ballot (Paxos, one decree per view change) in ordinary
 * Psync messages; each excluded member's cut is applied with Psync's `exclude`, identical
 * everywhere, so the Orders see the change at the same point. A view needs a majority of the
 * previous one (primary partition): a minority side stops ordering. Provides `MEMBERSHIP`,
 * requires `PSYNC`, `DIVIDER` and `FAILURE_DETECTION`.
 *
 * @example
 * ```ts
 * const host = await stack()
 *   .use(psync())
 *   .use(divider())
 *   .use(failureDetection())
 *   .use(membership())
 *   .use(totalOrder())
 *   .start({ transport, storage })
 * const group = await host.open({ port: 'kv', members: ['a', 'b', 'c'] })
 * group.get(MEMBERSHIP).onViewChange(({ view, left, reason }) => console.log(view.id, left, reason.kind))
 * ```
 */
import {
  DIVIDER,
  defineProtocol,
  FAILURE_DETECTION,
  MEMBERSHIP,
  maxGauges,
  PSYNC,
} from '@consul/xkernel'
import { type MembershipOptions, resolveOptions } from './options.js'
import { MembershipSession } from './session.js'
import './trace.js'

export type {
  MembershipControl,
  PrimaryState,
  View,
  ViewChange,
  ViewChangeReason,
} from '@consul/xkernel'
export { MEMBERSHIP } from '@consul/xkernel'
export type { Ballot, MembershipMessage, Value } from './codec.js'
export { decode as decodeMembershipMessage, encode as encodeMembershipMessage } from './codec.js'
export type { MembershipOptions } from './options.js'

/** The Membership factory. Bad options throw `XKernelError('INVALID_ARGUMENT')`. */
export function membership(options: MembershipOptions = {}) {
  const resolved = resolveOptions(options)
  return defineProtocol({
    name: 'membership',
    requires: [PSYNC, DIVIDER, FAILURE_DETECTION],
    provides: [MEMBERSHIP],
    raises: ['membership.deciding', 'membership.primary', 'trace.view', 'trace.record'],
    create: () => {
      const sessions = new Set<MembershipSession>()
      return {
        open(ctx) {
          const session = new MembershipSession(ctx, resolved)
          sessions.add(session)
          return {
            controls: { membership: session.control },
            start: () => session.start(),
            checkpoint: () => session.checkpoint(),
            restore: (state) => session.restore(state),
            carry: (next) => session.carry(next),
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
