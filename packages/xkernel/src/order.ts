/**
 * @packageDocumentation
 * `@consul/xkernel/order` — building blocks for Order protocols: the machinery every Order on
 * Psync needs apart from its ordering rule. `@consul/order-total`, `@consul/order-semantic`
 * and the Lamport example use all of it; another Order may take any part. The Order
 * *specification* (`ORDER`, `OrderControl`, `OrderedCommand`, `ORDER_CHANNEL`, …) stays in
 * `@consul/xkernel`: it is what every other protocol and application sees.
 *
 * - `CommandBatcher`: the submit queue, one Psync message per event-loop turn, promises
 *   settled per delivery level.
 * - `Acknowledger`: the empty-acknowledgement rule that lets waves complete when a member has
 *   nothing to send.
 * - `WaveSequence`, `stopAtWaveGap`, `waveGapMessage`: the never-skip-a-wave rule.
 * - `followPrimary`: no ordering outside the primary partition (`membership.primary`).
 * - `orderCheckpointHooks`: the session's part in the coordinated checkpoint.
 * - `resolveOrderOptions`, `numberOption`: defaults and checks of the shared options.
 * - `encodeCommandBatch`, `decodeCommandBatch`, `commandId`: the common framing.
 * - `orderedCommand`, `recordOrderDelivery`, `recordOrderTrace`: what a delivery records.
 * - `OrderError`: the one error class the Orders throw.
 *
 * @example
 * ```ts
 * import {
 *   DIVIDER,
 *   type DividerControl,
 *   OPERATIONS,
 *   PSYNC,
 *   type PsyncControl,
 *   type PsyncMessage,
 *   type SessionContext,
 * } from '@consul/xkernel'
 * import {
 *   Acknowledger,
 *   CommandBatcher,
 *   encodeCommandBatch,
 *   followPrimary,
 *   OrderError,
 * } from '@consul/xkernel/order'
 *
 * // A v2 Order: messages through the Divider, sends through Psync.
 * function open(ctx: SessionContext<{ psync: PsyncControl; divider: DividerControl }>) {
 *   const psync = ctx.get(PSYNC)
 *   const send = (payload: Uint8Array): PsyncMessage => {
 *     const message = psync.send(payload)
 *     acks.sent()
 *     return message
 *   }
 *   const batcher = new CommandBatcher(ctx, {
 *     maxBatch: 256,
 *     maxBatchBytes: 64 * 1024,
 *     error: (code, message) => new OrderError(code, message),
 *     send: (batch) => send(encodeCommandBatch(batch.map((c) => c.command))),
 *   })
 *   // No new submits outside the primary partition (declare observes: ['membership.primary']).
 *   followPrimary(ctx, batcher)
 *   const acks = new Acknowledger(ctx, {
 *     ackDelayMs: 1,
 *     flush: () => batcher.flush(),
 *     sendAck: () => send(new Uint8Array(0)),
 *   })
 *   ctx.get(DIVIDER).subscribe('my-order', {
 *     channels: [OPERATIONS], // command-bearing messages only
 *     deliver: (m) => {
 *       if (m.sender !== ctx.self) acks.received()
 *     },
 *     wave: (wave, messages) => {
 *       // … the ordering rule: deliver, then batcher.delivered(orderedCommand(…))
 *     },
 *   })
 * }
 * ```
 */
export {
  Acknowledger,
  type AcknowledgerContext,
  type AcknowledgerOptions,
} from './order/acknowledger.js'
export {
  CommandBatcher,
  type CommandBatcherContext,
  type CommandBatcherOptions,
  type QueuedCommand,
} from './order/batcher.js'
export { type OrderCheckpointHooks, orderCheckpointHooks } from './order/checkpoint.js'
export { orderedCommand, recordOrderDelivery, recordOrderTrace } from './order/delivery.js'
export {
  OrderError,
  type OrderErrorCode,
  type OrderErrorDetails,
  type OrderErrorFactory,
} from './order/errors.js'
export { commandId, decodeCommandBatch, encodeCommandBatch } from './order/framing.js'
export {
  type NumberOptionSpec,
  numberOption,
  type OrderOptions,
  type ResolvedOrderOptions,
  resolveOrderOptions,
} from './order/options.js'
export {
  type FollowPrimaryContext,
  followPrimary,
  type PrimaryFollower,
} from './order/primary.js'
export { stopAtWaveGap, WaveSequence, type WaveVerdict, waveGapMessage } from './order/waves.js'
