/**
 * The simulator's agenda: a binary min-heap of events ordered by (time, sequence). The
 * sequence number breaks ties in scheduling order, which is what makes a run replayable:
 * two events at the same virtual instant always run in the order they were scheduled.
 * Cancelled events stay in the heap and are skipped when popped (cheaper than removal).
 */
export class SimEvent {
  cancelled = false
  constructor(
    readonly time: number,
    readonly seq: number,
    /** Host index the event belongs to, or -1 for the simulator itself. */
    readonly host: number,
    /** Host incarnation the event belongs to (timers die with their incarnation), or -1. */
    readonly incarnation: number,
    readonly run: () => void | Promise<void>,
  ) {}
}

export class EventQueue {
  private heap: SimEvent[] = []
  private seq = 0

  get size(): number {
    return this.heap.length
  }

  push(time: number, host: number, incarnation: number, run: () => void | Promise<void>): SimEvent {
    const event = new SimEvent(time, this.seq++, host, incarnation, run)
    const heap = this.heap
    let i = heap.length
    heap.push(event)
    while (i > 0) {
      const parent = (i - 1) >> 1
      const p = heap[parent]!
      if (p.time < time || (p.time === time && p.seq < event.seq)) break
      heap[i] = p
      i = parent
    }
    heap[i] = event
    return event
  }

  peek(): SimEvent | undefined {
    return this.heap[0]
  }

  pop(): SimEvent | undefined {
    const heap = this.heap
    const top = heap[0]
    if (top === undefined) return undefined
    const last = heap.pop()!
    const n = heap.length
    if (n > 0) {
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        if (l >= n) break
        const r = l + 1
        let c = l
        let child = heap[l]!
        if (r < n) {
          const right = heap[r]!
          if (right.time < child.time || (right.time === child.time && right.seq < child.seq)) {
            c = r
            child = right
          }
        }
        if (last.time < child.time || (last.time === child.time && last.seq < child.seq)) break
        heap[i] = child
        i = c
      }
      heap[i] = last
    }
    return top
  }

  clear(): void {
    this.heap = []
  }
}
