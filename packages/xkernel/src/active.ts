/**
 * Waiting for a group to be active, across what Recovery may do to it on the way: a restart
 * from a fetched checkpoint (state transfer) and a move into another configuration (a join).
 */
import type { CapabilityMap } from './capability.js'
import { XKernelError } from './errors.js'
import type { Group, Host } from './host.js'
import { RECOVERY, type RecoveryControl } from './recovery-control.js'

/**
 * Waits until `first` (or the group it became) is active: restarts it from a fetched
 * checkpoint (`RESTART_REQUIRED`, at most `maxRestarts` times) and follows it into a new
 * configuration (the handle closed, `host.group(port)` is another). Resolves with the group.
 */
export async function untilActive<P extends CapabilityMap>(
  host: Host<P>,
  first: Group<P>,
  maxRestarts: number,
): Promise<Group<P>> {
  let group = first
  let restarts = 0
  for (;;) {
    let recovery: RecoveryControl
    try {
      recovery = (group as unknown as Group<{ recovery: RecoveryControl }>).get(RECOVERY)
    } catch (error) {
      if (XKernelError.isInstance(error) && error.code === 'UNKNOWN_CAPABILITY') return group
      const moved = await movedOn(host, group)
      if (moved === undefined) throw error
      group = moved
      continue
    }
    try {
      await recovery.ready()
      return group
    } catch (error) {
      if (!XKernelError.isInstance(error)) throw error
      if (error.code === 'GROUP_CLOSED') {
        // Moved into another configuration meanwhile: go on with that one.
        const moved = await movedOn(host, group)
        if (moved === undefined) throw error
        group = moved
        continue
      }
      if (error.code !== 'RESTART_REQUIRED' || restarts >= maxRestarts) throw error
      restarts++
      group = await group.restart()
    }
  }
}

/**
 * The group `group` became, when it moved into another configuration (the new one opens just
 * after the old one closes: a few timer turns are allowed for it); `undefined` if none.
 */
async function movedOn<P extends CapabilityMap>(
  host: Host<P>,
  group: Group<P>,
): Promise<Group<P> | undefined> {
  for (let turn = 0; turn < 5; turn++) {
    const now = host.group(group.port)
    if (now !== undefined && now !== group) return now
    // The new handle opens once the old one has closed — after storage work, which on a
    // real disk takes longer than a few timer turns: wait for the move itself.
    const move = host.moving(group.port)
    if (move !== undefined)
      return move.then(
        (next) => (next === group ? undefined : next),
        () => undefined,
      )
    await new Promise<void>((resolve) => host.clock.setTimer(1, resolve))
  }
  return undefined
}
