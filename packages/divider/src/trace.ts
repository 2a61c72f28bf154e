/**
 * The Divider's trace records, declared into `@consul/xkernel`'s `TraceRecords` so the
 * simulator records them without knowing the Divider, and `./checkers` reads them back.
 *
 * (The import below also keeps this file a module in the built declarations: a bare
 * `declare module` there would replace `@consul/xkernel`'s types instead of adding to them.)
 */
import type { NodeId } from '@consul/xkernel'

declare module '@consul/xkernel' {
  interface TraceRecords {
    /** A protocol subscribed (at this incarnation of the host). */
    'divider.subscribed': {
      readonly who: string
      readonly channels: readonly string[]
      readonly acknowledgements: boolean
      readonly deliver: boolean
      readonly wave: boolean
    }
    /** The subscription of `who` ended. */
    'divider.unsubscribed': { readonly who: string }
    /**
     * Message `id` was handed to these subscribers' `deliver` (`channel`: its channel's name,
     * `''` for a bare acknowledgement, `'0x..'` for an unregistered byte).
     */
    'divider.routed': {
      readonly id: string
      /** The message's sender. */
      readonly from: NodeId
      readonly channel: string
      readonly to: readonly string[]
    }
    /** Wave `wave` was handed to each subscriber's `wave` with these message ids. */
    'divider.wave': {
      readonly wave: number
      readonly to: readonly { readonly who: string; readonly ids: readonly string[] }[]
    }
  }
}
