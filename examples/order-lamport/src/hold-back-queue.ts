/**
 * The hold-back queue: command-bearing messages delivered by Psync but not yet stable,
 * sorted by stamp. Delivery only ever takes from the front, so the sequence handed to the
 * application is sorted by key at every replica.
 */
import type { PsyncMessage } from '@consul/xkernel'
import { compareStamps, type Stamp } from './stamp.js'

export interface HeldMessage {
  readonly stamp: Stamp
  readonly message: PsyncMessage
  readonly commands: readonly Uint8Array[]
  /** Index of the next command to deliver (above 0 when a checkpoint covers a prefix). */
  next: number
}

export class HoldBackQueue {
  private readonly items: HeldMessage[] = []

  get size(): number {
    return this.items.length
  }

  /** Inserts by stamp. Psync delivers roughly in stamp order, so search from the back. */
  insert(item: HeldMessage): void {
    let at = this.items.length
    while (at > 0 && compareStamps(this.items[at - 1]!.stamp, item.stamp) > 0) at--
    this.items.splice(at, 0, item)
  }

  peek(): HeldMessage | undefined {
    return this.items[0]
  }

  shift(): HeldMessage | undefined {
    return this.items.shift()
  }

  /** Removes the items `drop` selects; returns how many. */
  remove(drop: (item: HeldMessage) => boolean): number {
    let removed = 0
    for (let i = this.items.length - 1; i >= 0; i--) {
      if (drop(this.items[i]!)) {
        this.items.splice(i, 1)
        removed++
      }
    }
    return removed
  }

  /** The smallest Psync depth of a held message from position `from` on (Infinity if none). */
  minDepth(from = 0): number {
    let min = Number.POSITIVE_INFINITY
    for (let i = from; i < this.items.length; i++) {
      const depth = this.items[i]!.message.depth
      if (depth < min) min = depth
    }
    return min
  }
}
