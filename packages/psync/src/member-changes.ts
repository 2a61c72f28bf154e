/**
 * Changes of the counted member list, and holds pending a decision: `maskOut` / `maskIn`
 * (local, reversible), `hold` / `release` (park a member's messages while Membership
 * decides), and `exclude` with a cut (agreed, for good). Each re-evaluates stability and
 * waves and reports the new list (`onMembersChanged`, `trace.view`).
 *
 * Invariants: an exclusion is refused, changing nothing, when a message above the cut is
 * already part of a completed wave here (`CUT_CONFLICT`); after an exclusion nothing above
 * the cut is held, parked, in the graph or accepted later; a wave waits for the excluded
 * member's messages up to the cut (they are fetched when missing).
 */
import { PsyncError } from './errors.js'
import type { PsyncSession } from './session.js'

export function membersChanged(s: PsyncSession): void {
  const counted = s.members.counted()
  if (s.ctx.events.has('trace.view')) {
    s.ctx.events.emit('trace.view', {
      group: s.ctx.group.port,
      layer: 'psync',
      view: counted,
      id: s.members.nextViewId(),
    })
  }
  s.memberHandlers.emit(counted)
}

export function maskOut(s: PsyncSession, p: number): void {
  if (!s.members.maskOut(p)) return
  // Its parked messages go the way of its held ones: dropped (it is masked out).
  const parked = s.parked.release(p).length
  const dropped = s.held.dropFrom(p, s.knownSeq(p)) + parked
  s.counters.inc('droppedMasked', dropped)
  s.ctx.log.info('member masked out', { member: s.members.name(p) })
  s.advance()
  membersChanged(s)
}

export function maskIn(s: PsyncSession, p: number): void {
  if (!s.members.maskIn(p)) return
  s.ctx.log.info('member masked in', { member: s.members.name(p) })
  membersChanged(s)
}

/** Parks `p`'s later messages pending a decision; returns the highest seq of `p` here. */
export function hold(s: PsyncSession, p: number): number {
  if (p === s.members.self)
    throw new PsyncError('INVALID_ARGUMENT', 'a member cannot hold its own messages')
  if (s.members.cut[p] === undefined && !s.parked.isOnHold(p)) {
    s.parked.hold(p)
    // Its messages already waiting for predecessors would be inserted above the seq returned
    // below once those arrive: they wait for the decision instead (unless another held
    // message needs them).
    for (const frame of s.held.takeFrom(p, (m) => s.parked.isOnHold(m))) s.parked.park(frame)
    s.ctx.log.info('member on hold pending a decision', { member: s.members.name(p) })
  }
  return s.knownSeq(p)
}

/** Ends a hold: what was parked is received after all (in seq order). */
export function release(s: PsyncSession, p: number): void {
  if (!s.parked.isOnHold(p)) return
  const frames = s.parked.release(p)
  s.ctx.log.info('member released from hold', {
    member: s.members.name(p),
    parked: frames.length,
  })
  for (const frame of frames) s.receiver.onData(frame, p)
}

/**
 * `stored`: re-applied from the log at a restart (`x/<member>`), so not recorded again.
 * The same exclusion applied twice (the log re-applied it, then the deciding protocol does on
 * replay or from its checkpoint) changes nothing the second time.
 */
export function exclude(s: PsyncSession, p: number, cutSeq: number, stored = false): void {
  const members = s.members
  if (p !== members.self && members.cut[p] === cutSeq) return
  members.checkExclusion(p, cutSeq)
  // Messages above the cut that a complete wave here already counted: the decision
  // contradicts an ordered delivery. Refuse it before changing anything.
  const counted = [...s.graph.range(p, cutSeq, s.knownSeq(p))].filter((m) => m.depth < s.waves.next)
  if (counted.length > 0) {
    s.counters.inc('cutConflicts')
    throw new PsyncError(
      'CUT_CONFLICT',
      `exclude('${members.name(p)}', ${cutSeq}): ${members.idOf(p, counted[0]!.seq)} is above the cut but wave ${counted[0]!.depth} here is complete with it; Membership must cut at or above every message a member delivered in order`,
    )
  }
  members.exclude(p, cutSeq)
  // Durable with the next commit, before any pruning after it: a restart that finds neither
  // the deciding messages (pruned) nor a usable checkpoint of Membership still knows the cut.
  if (!stored) s.log.recordExclusion(p, cutSeq, s.waves.next)
  s.counters.inc('droppedExcluded', s.held.dropFrom(p, cutSeq))
  const discarded = s.graph.discardAbove(p, cutSeq)
  if (discarded.length > 0)
    s.ctx.log.warn('excluded member had messages beyond the cut', {
      member: members.name(p),
      count: discarded.length,
    })
  // What was parked pending this decision: up to the cut it counts, above it is void.
  for (const frame of s.parked.release(p)) {
    if (frame.seq > cutSeq) s.counters.inc('droppedExcluded')
    else s.receiver.onData(frame, p)
  }
  // Its messages up to the cut count everywhere: fetch any not here yet.
  if (cutSeq > 0 && !s.graph.has(p, cutSeq)) {
    s.wants.want([{ member: p, seq: cutSeq }], -1, s.ctx.clock.now(), 'cut')
    s.repair.arm()
  }
  s.ctx.log.info('member excluded', { member: members.name(p), cut: cutSeq })
  s.advance()
  membersChanged(s)
}
