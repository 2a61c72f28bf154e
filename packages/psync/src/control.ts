/**
 * `PsyncControl` over a session: what the protocols above see. Ids from the caller are
 * parsed here; an id that names no member or no message is simply not found (`get` →
 * undefined, `stable` → false), while a name that is not a member throws `NOT_A_MEMBER`.
 */
import { type MessageId, type PsyncControl, parseMessageId } from '@consul/xkernel'
import type { Ref } from './codec.js'
import { exclude, hold, maskIn, maskOut, release } from './member-changes.js'
import type { PsyncSession } from './session.js'

export function makeControl(s: PsyncSession): PsyncControl {
  const ref = (id: MessageId): Ref | undefined => {
    const parsed = parseMessageId(id)
    if (parsed === undefined) return undefined
    const member = s.members.indexOf(parsed.sender)
    return member === undefined ? undefined : { member, seq: parsed.seq }
  }
  const node = (id: MessageId) => {
    const r = ref(id)
    return r === undefined ? undefined : s.graph.get(r.member, r.seq)
  }
  return {
    self: s.ctx.self,
    send: (payload) => s.send(payload),
    onDeliver: (handler) => s.delivery.handlers.add(handler),
    messages: () => s.delivery.messages(),
    onWave: (handler) => s.waveHandlers.add(handler),
    get: (id) => {
      const n = node(id)
      return n === undefined ? undefined : s.delivery.view(n)
    },
    precedes: (a, b) => {
      const ra = ref(a)
      const nb = node(b)
      return ra !== undefined && nb !== undefined && s.graph.precedes(ra, nb)
    },
    stable: (id) => {
      const r = ref(id)
      if (r === undefined) return false
      if (s.graph.isPruned(r.member, r.seq)) return true
      return s.graph.get(r.member, r.seq) !== undefined && s.stability.isStable(r.member, r.seq)
    },
    onStable: (handler) => s.stableHandlers.add(handler),
    durable: (id) => {
      const r = ref(id)
      return r !== undefined && r.member === s.members.self && r.seq <= s.own.transmittedSeq
    },
    onDurable: (handler) => s.durableHandlers.add(handler),
    waveFloor: () => Math.max(-1, ...s.graph.prunedDepth) + 1,
    leaves: () => s.graph.leaves().map((n) => s.delivery.view(n)),
    depth: (id) => node(id)?.depth,
    wave: (depth) => s.sortedWave(depth).map((n) => s.delivery.view(n)),
    waveComplete: (depth) => s.isWaveComplete(depth),
    members: () => s.members.counted(),
    acknowledgedBy: (name) => {
      const q = s.members.member(name)
      return q === s.members.self ? s.own.transmittedSeq : s.resender.ackedAt[q]!
    },
    onMembersChanged: (handler) => s.memberHandlers.add(handler),
    onHeard: (handler) => s.receiver.heardHandlers.add(handler),
    onExcluded: (handler) => s.receiver.excludedHandlers.add(handler),
    sendDirect: (to, payload) => s.sendDirect(to, payload),
    onDirect: (handler) => s.receiver.directHandlers.add(handler),
    maskOut: (name) => maskOut(s, s.members.member(name)),
    maskIn: (name) => maskIn(s, s.members.member(name)),
    hold: (name) => hold(s, s.members.member(name)),
    release: (name) => release(s, s.members.member(name)),
    onHold: (name) => s.parked.isOnHold(s.members.member(name)),
    exclude: (name, cutSeq) => exclude(s, s.members.member(name), cutSeq),
    setPruneFloor: (depth) => s.setPruneFloor(depth),
  }
}
