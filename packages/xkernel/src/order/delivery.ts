/**
 * What every Order does as it delivers a command: build its `OrderedCommand`, count it and
 * raise `trace.delivered`.
 */
import type { OrderedCommand, OrderPosition } from '../order-spec.js'
import type { PsyncMessage } from '../psync-control.js'
import type { CommandBatcherContext } from './batcher.js'
import { commandId } from './framing.js'

/** The `OrderedCommand` for the `index`-th command carried by `message`. */
export function orderedCommand(
  message: PsyncMessage,
  index: number,
  command: Uint8Array,
  position: OrderPosition,
): OrderedCommand {
  return {
    id: commandId(message.id, index),
    message: message.id,
    sender: message.sender,
    command,
    position,
    restored: message.restored,
  }
}

/**
 * Counts a delivery (`delivered`) and raises `trace.delivered` (layer `order`, the command's
 * wave as its depth) when anyone listens — what every Order does as it delivers a command.
 */
export function recordOrderDelivery(
  ctx: CommandBatcherContext,
  ordered: OrderedCommand,
  depth: number,
): void {
  ctx.counters.inc('delivered')
  if (ctx.events.has('trace.delivered')) recordOrderTrace(ctx, ordered, depth)
}

/**
 * Raises `trace.delivered` (layer `order`, the command's wave as its depth) unconditionally:
 * the half of `recordOrderDelivery` for an Order that counts `delivered` itself and checked
 * `events.has('trace.delivered')` once per message.
 */
export function recordOrderTrace(
  ctx: CommandBatcherContext,
  ordered: OrderedCommand,
  depth: number,
): void {
  ctx.events.emit('trace.delivered', {
    group: ctx.group.port,
    layer: 'order',
    id: ordered.id,
    from: ordered.sender,
    depth,
  })
}
