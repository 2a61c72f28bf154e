/**
 * The total order's key. A command is ordered by the Lamport timestamp of the message that
 * carried it, then by its sender's id (so two members that used the same timestamp are
 * ordered the same way everywhere), then by its index in the message. The key is carried
 * in the message, so every replica computes the same one: agreement reduces to never
 * delivering a key while a smaller one can still arrive (see `stability.ts`).
 */
import type { NodeId } from '@consul/xkernel'

/** A message's place in the order: (timestamp, sender). */
export interface Stamp {
  readonly timestamp: number
  readonly sender: NodeId
}

/** A command's place in the order: (timestamp, sender, index in its message). */
export interface CommandKey extends Stamp {
  readonly index: number
}

/** Member ids compare by UTF-16 code units: locale-independent, the same on every host. */
function compareIds(a: NodeId, b: NodeId): number {
  return a < b ? -1 : a > b ? 1 : 0
}

export function compareStamps(a: Stamp, b: Stamp): number {
  return a.timestamp - b.timestamp || compareIds(a.sender, b.sender)
}

export function compareCommandKeys(a: CommandKey, b: CommandKey): number {
  return compareStamps(a, b) || a.index - b.index
}
