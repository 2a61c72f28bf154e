/**
 * Deliberately broken Memberships, for the suite's teeth: each must be rejected by at least
 * one check of the suite (`membershipSuiteTeeth`).
 *
 * - `local`: decides alone, as the weak configuration does, but claims agreed views: on its
 *   own suspicion — while it hears a majority — it excludes the member with the cut it
 *   happens to hold and installs the next view: views disagree after a false suspicion.
 * - `no-majority`: the same without the majority test: the minority side of a partition
 *   installs its own view too (split brain).
 */
import {
  DIVIDER,
  defineProtocol,
  FAILURE_DETECTION,
  Listeners,
  MEMBERSHIP,
  type MembershipControl,
  type NodeId,
  type PrimaryState,
  PSYNC,
  type View,
  type ViewChange,
  XKernelError,
} from '@consul/xkernel'

export const BROKEN_MEMBERSHIPS = ['local', 'no-majority'] as const
export type BrokenMembership = (typeof BROKEN_MEMBERSHIPS)[number]

export function brokenMembership(fault: BrokenMembership) {
  return defineProtocol({
    name: 'membership',
    requires: [PSYNC, DIVIDER, FAILURE_DETECTION],
    provides: [MEMBERSHIP],
    raises: ['trace.record'],
    create: () => ({
      open(ctx) {
        const psync = ctx.get(PSYNC)
        const fd = ctx.get(FAILURE_DETECTION)
        fd.delegate()
        let view: View = {
          id: 0,
          configuration: ctx.group.configuration,
          members: [...ctx.group.members].sort(),
        }
        const handlers = new Listeners<[ViewChange]>(
          () => new XKernelError('INVALID_ARGUMENT', 'handler'),
        )
        const states = new Listeners<[PrimaryState, View]>(
          () => new XKernelError('INVALID_ARGUMENT', 'handler'),
        )
        const exclude = (member: NodeId) => {
          if (!view.members.includes(member)) return
          const reachable = view.members.filter((m) => !fd.suspected().includes(m)).length
          if (fault === 'local' && reachable * 2 <= view.members.length) return
          const cut = psync.hold(member)
          psync.exclude(member, cut)
          view = {
            id: view.id + 1,
            configuration: view.configuration,
            members: view.members.filter((m) => m !== member),
          }
          const change: ViewChange = {
            view,
            joined: [],
            left: [member],
            reason: {
              kind: 'failure',
              decidedBy: ctx.self,
              cuts: { [member]: cut },
              suspicions: {},
              leaves: [],
            },
          }
          if (ctx.events.has('trace.record'))
            ctx.events.emit('trace.record', {
              kind: 'membership.view',
              group: ctx.group.port,
              layer: 'membership',
              data: {
                id: view.id,
                members: view.members,
                left: [member],
                cuts: { [member]: cut },
                decidedBy: ctx.self,
                excluded: false,
              },
            } as never)
          handlers.emit(change)
        }
        fd.onSuspect((s) => exclude(s.member))
        const control: MembershipControl = {
          view: () => view,
          state: () => 'primary',
          onViewChange: (h) => handlers.add(h),
          onStateChange: (h) => states.add(h),
          suspect: (member) => exclude(member),
          deciding: () => [],
          up: async () => view,
          leave: async () => {
            throw new XKernelError('INVALID_ARGUMENT', 'a broken Membership does not leave')
          },
        }
        return { controls: { membership: control } }
      },
    }),
  })
}
