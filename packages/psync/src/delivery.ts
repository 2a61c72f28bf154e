/**
 * Delivery to the layer above: the `PsyncMessage` view of a node (built once, kept on the
 * node), the `trace.delivered` record, the `onDeliver` callbacks and the pull-style iterator.
 *
 * Invariant: every message is handed up exactly once per incarnation, in the order the graph
 * inserted it (causal order); the iterator buffers what nobody has taken yet.
 */
import {
  digestBytes,
  Listeners,
  messageId,
  type NodeId,
  type PsyncMessage,
  type SessionContext,
} from '@consul/xkernel'
import type { GraphNode } from './context-graph.js'
import { PsyncError } from './errors.js'

export class Delivery {
  readonly handlers = new Listeners<[PsyncMessage]>(
    () => new PsyncError('INVALID_ARGUMENT', 'onDeliver takes a function'),
  )
  private readonly queue: PsyncMessage[] = []
  private readonly waiters: ((r: IteratorResult<PsyncMessage>) => void)[] = []
  private closed = false

  constructor(
    private readonly ctx: SessionContext<Record<never, never>>,
    private readonly names: readonly NodeId[],
    readonly iteratorMode: boolean,
  ) {}

  /**
   * The message as the layer above sees it, built once and kept on the node (not in a
   * `WeakMap`: ephemeron tables make every young-generation GC pause longer).
   */
  view(node: GraphNode): PsyncMessage {
    let view = node.view
    if (view === undefined) {
      const names = this.names
      view = {
        id: messageId(names[node.sender]!, node.seq),
        sender: names[node.sender]!,
        seq: node.seq,
        depth: node.depth,
        deps: node.deps.map((d) => messageId(names[d.member]!, d.seq)),
        payload: node.payload,
        restored: node.restored,
      }
      node.view = view
    }
    return view
  }

  deliver(node: GraphNode): void {
    this.ctx.counters.inc('delivered')
    const events = this.ctx.events
    const message = this.view(node)
    if (events.has('trace.delivered')) {
      events.emit('trace.delivered', {
        group: this.ctx.group.port,
        layer: 'psync',
        id: message.id,
        from: message.sender,
        digest: digestBytes(message.payload),
        deps: message.deps,
        depth: message.depth,
      })
    }
    this.handlers.emit(message)
    if (this.iteratorMode) {
      const waiter = this.waiters.shift()
      if (waiter !== undefined) waiter({ value: message, done: false })
      else this.queue.push(message)
    }
  }

  messages(): AsyncIterableIterator<PsyncMessage> {
    if (!this.iteratorMode) {
      throw new PsyncError(
        'WRONG_DELIVERY_MODE',
        "messages() needs the conversation opened with delivery 'iterator' (options: { psync: { delivery: 'iterator' } })",
      )
    }
    const iterator: AsyncIterableIterator<PsyncMessage> = {
      next: () => {
        const value = this.queue.shift()
        if (value !== undefined) return Promise.resolve({ value, done: false })
        if (this.closed) return Promise.resolve({ value: undefined, done: true })
        return new Promise((resolve) => this.waiters.push(resolve))
      },
      [Symbol.asyncIterator]: () => iterator,
    }
    return iterator
  }

  close(): void {
    this.closed = true
    for (const w of this.waiters.splice(0)) w({ value: undefined, done: true })
  }
}
