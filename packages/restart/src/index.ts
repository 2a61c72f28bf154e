/**
 * @packageDocumentation
 * `@consul/restart` — Consul's **Restart**: brings a replica's groups back after a crash, in
 * the paper's order, and counts its incarnations. Sends no message of its own.
 *
 * - `openOrRecover(host, groups)`: what a replica does at start — every group recorded in
 *   storage is re-created from it (`host.recoverGroups`: each session rebuilds its state, Psync
 *   first — its graph from the log — then the protocols above, bottom first; Recovery gives
 *   the sessions their checkpoint first), and every configured group not recorded is opened
 *   afresh. `host.describe()` shows the sessions in that order and which were given a
 *   checkpoint state back.
 * - `recoverReady(host, groups)`: `openOrRecover`, then waits until every group is active,
 *   restarting a group from the checkpoint Recovery fetched from a live member when its own
 *   were unusable (state transfer).
 * - `restart()`: the protocol. Each time a group's session opens it counts one more
 *   **incarnation** of this member in the group (durable in its storage); `RESTART.incarnation()`
 *   tells it (1 on the first open), `restoring()` whether this one came back from storage.
 *
 * @example
 * ```ts
 * const host = await stack().use(psync()) … .use(recovery()).use(restart()).start({ transport, storage })
 * const [group] = await openOrRecover(host, [{ port: 'g', members: ['a', 'b', 'c'] }])
 * console.log(group.get(RESTART).incarnation())
 * ```
 */
import {
  type CapabilityMap,
  capability,
  defineProtocol,
  type Group,
  type GroupSpec,
  type Host,
  untilActive,
  XKernelError,
} from '@consul/xkernel'

export interface RestartControl {
  /** This member's incarnation in the group: 1 on the first open, one more at each reopen. */
  incarnation(): number
  /** True when this incarnation re-created the group from storage (after a crash). */
  restoring(): boolean
}

export const RESTART = capability<'restart', RestartControl>('restart')

const KEY = 'incarnation'

/** The Restart protocol (no options). */
export function restart() {
  return defineProtocol({
    name: 'restart',
    provides: [RESTART],
    create: () => ({
      open(ctx) {
        let previous = 0
        try {
          const bytes = ctx.storage.get(KEY)
          if (bytes !== undefined && bytes.length === 8)
            previous = new DataView(bytes.buffer, bytes.byteOffset, 8).getFloat64(0)
        } catch {
          // Unreadable: count on from the highest we can be sure of — none. The incarnation
          // still differs from the last one's unless that too was lost with the record.
          ctx.counters.inc('incarnationUnreadable')
        }
        if (!Number.isSafeInteger(previous) || previous < 0) previous = 0
        const incarnation = previous + 1
        const out = new Uint8Array(8)
        new DataView(out.buffer).setFloat64(0, incarnation)
        ctx.storage.put(KEY, out)
        ctx.counters.inc(ctx.group.restoring ? 'restored' : 'opened')
        const control: RestartControl = {
          incarnation: () => incarnation,
          restoring: () => ctx.group.restoring,
        }
        return { controls: { restart: control } }
      },
    }),
  })
}

/**
 * Opens a replica's configured groups: those recorded in storage are re-created from it
 * (`recoverGroups`, with `groups`' options), the others opened afresh; resolves with the
 * groups in the order `groups` lists them. A group recorded in storage but not configured is
 * recovered too (the replica was in it when it crashed) and comes last. Bad `groups` (not an
 * array of `{ port, members }`, a port listed twice) throw `XKernelError('INVALID_ARGUMENT')`;
 * what `open` and `recoverGroups` throw passes through.
 */
export async function openOrRecover<P extends CapabilityMap>(
  host: Host<P>,
  groups: readonly GroupSpec[],
): Promise<Group<P>[]> {
  if (!Array.isArray(groups))
    throw new XKernelError('INVALID_ARGUMENT', 'openOrRecover takes a list of { port, members }')
  const byPort = new Map<string, GroupSpec>()
  for (const spec of groups) {
    if (spec === null || typeof spec !== 'object' || typeof spec.port !== 'string')
      throw new XKernelError('INVALID_ARGUMENT', 'openOrRecover: each group is { port, members }')
    if (byPort.has(spec.port))
      throw new XKernelError(
        'INVALID_ARGUMENT',
        `openOrRecover: group ${spec.port} is listed twice`,
      )
    byPort.set(spec.port, spec)
  }
  const recovered = await host.recoverGroups((port) => byPort.get(port)?.options)
  const out: Group<P>[] = []
  for (const spec of groups) out.push(host.group(spec.port) ?? (await host.open(spec)))
  for (const g of recovered) if (!byPort.has(g.port)) out.push(g)
  return out
}

/**
 * `openOrRecover`, then waits until every group is **active** (Recovery's `ready()`): a group
 * whose Recovery fetched a checkpoint from a live member (state transfer: no checkpoint of its
 * own was usable) is restarted from it (`group.restart()`) — at most `maxRestarts` times per
 * group (default 3). Resolves with the groups, in `openOrRecover`'s order; a group without
 * Recovery in its stack is returned as opened. Rejects with what `ready()` rejects with
 * otherwise (`EXCLUDED`, `RECOVERY_FAILED`, `GROUP_CLOSED`), and with `RESTART_REQUIRED` after
 * `maxRestarts` restarts. A group that moves into another configuration meanwhile (a member
 * joined: the handle closes) is followed: the group resolved is `host.group(port)`'s.
 */
export async function recoverReady<P extends CapabilityMap>(
  host: Host<P>,
  groups: readonly GroupSpec[],
  options: { readonly maxRestarts?: number } = {},
): Promise<Group<P>[]> {
  const maxRestarts = options.maxRestarts ?? 3
  if (!Number.isSafeInteger(maxRestarts) || maxRestarts < 0)
    throw new XKernelError(
      'INVALID_ARGUMENT',
      `recoverReady: maxRestarts must be an integer >= 0, got ${String(maxRestarts)}`,
    )
  const opened = await openOrRecover(host, groups)
  return Promise.all(opened.map((group) => untilActive(host, group, maxRestarts)))
}
