/**
 * Failure Detection's trace records, declared into `@consul/xkernel`'s `TraceRecords` so the
 * simulator records them (`history.declared('failure-detection.suspected')`) unedited.
 * (The import keeps this file a module augmentation in the built declarations.)
 */
import type { NodeId, SuspicionReason } from '@consul/xkernel'

declare module '@consul/xkernel' {
  interface TraceRecords {
    /** This replica suspected `member`, for `reason`. */
    'failure-detection.suspected': { readonly member: NodeId; readonly reason: SuspicionReason }
    /** A member suspected here was heard from again. */
    'failure-detection.alive': { readonly member: NodeId }
  }
}
