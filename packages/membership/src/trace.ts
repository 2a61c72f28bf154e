/**
 * Membership's trace records, declared into `@consul/xkernel`'s `TraceRecords` so the
 * simulator records them (`history.declared('membership.view')`) unedited and the checkers
 * read them. (The import keeps this file a module augmentation in the built declarations.)
 */
import type { NodeId } from '@consul/xkernel'

declare module '@consul/xkernel' {
  interface TraceRecords {
    /** This replica installed view `id` (`excluded`: it learned that the view leaves it out). */
    'membership.view': {
      readonly id: number
      /** The group's configuration (views are numbered from 0 in each). */
      readonly configuration: number
      readonly members: readonly NodeId[]
      /** Members that came in (a join: view 0 of a configuration after the first). */
      readonly joined: readonly NodeId[]
      readonly left: readonly NodeId[]
      readonly cuts: Readonly<Record<NodeId, number>>
      readonly decidedBy: NodeId
      readonly excluded: boolean
    }
  }
}
