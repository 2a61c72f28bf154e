/**
 * No ordering outside the primary partition: Membership raises `membership.primary` when
 * this replica falls into a minority, is excluded, or reaches a majority again, and the
 * Order's batcher follows it (`CommandBatcher.primary`). Without Membership in the stack
 * nobody raises the event, and the Order behaves as before.
 */
import type { ConsulEvents } from '../events.js'
import type { SessionEvents } from '../protocol.js'

/** What a session context offers that `followPrimary` uses (a `SessionContext` is one). */
export interface FollowPrimaryContext {
  readonly events: Pick<SessionEvents, 'on'>
  readonly group: { readonly port: string }
}

/** Whatever follows the primary state: a `CommandBatcher` of any tag type. */
export interface PrimaryFollower {
  primary(state: ConsulEvents['membership.primary']['state'], view: number): void
}

/**
 * Hands every `membership.primary` of this session's group to `follower` (the event bus is
 * the host's: other groups' events are skipped). Call it at open; the protocol must declare
 * `observes: ['membership.primary']`, or `ctx.events.on` throws. The subscription ends with
 * the session.
 */
export function followPrimary(ctx: FollowPrimaryContext, follower: PrimaryFollower): void {
  const port = ctx.group.port
  ctx.events.on('membership.primary', (e) => {
    if (e.group === port) follower.primary(e.state, e.view)
  })
}
