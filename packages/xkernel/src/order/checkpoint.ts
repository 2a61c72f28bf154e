/**
 * An Order's part in the coordinated checkpoint (`GroupCheckpoints`): its session hooks.
 */
import type { OrderControl } from '../order-spec.js'

export interface OrderCheckpointHooks {
  checkpoint(): Uint8Array | undefined
  restore(state: Uint8Array): void
}

/**
 * The session hooks of an Order: `checkpoint()` is the Order's `checkpoint()` at a wave
 * boundary and `undefined` between two (the coordinated checkpoint then waits for the next
 * boundary); `restore()` is its `restore()`.
 *
 * ```ts
 * return { controls: { order: control }, ...orderCheckpointHooks(control) }
 * ```
 */
export function orderCheckpointHooks(
  order: Pick<OrderControl, 'atWaveBoundary' | 'checkpoint' | 'restore'>,
): OrderCheckpointHooks {
  return {
    checkpoint: () => (order.atWaveBoundary() ? order.checkpoint() : undefined),
    restore: (state) => order.restore(state),
  }
}
