/**
 * What every host did, in virtual-time order: the messages it sent, delivered and
 * acknowledged, the views it installed (from the `trace.*` events protocols raise), and the
 * simulator's own lifecycle records (crash, restart, pause). Invariant checkers read this.
 */
import type { NodeId, TraceRecords } from '@consul/xkernel'

/** The simulator's own kinds and every kind a package declared in `TraceRecords`. */
export type RecordKind =
  | keyof TraceRecords
  | 'sent'
  | 'delivered'
  | 'acknowledged'
  | 'stable'
  | 'wave'
  | 'view'
  | 'opened'
  | 'crash'
  | 'restart'
  | 'pause'

export interface HistoryRecord {
  /** Virtual time (ms). */
  readonly time: number
  readonly node: NodeId
  /** 0 for the first run of the node, +1 per restart. */
  readonly incarnation: number
  readonly kind: RecordKind
  readonly group?: string | undefined
  /** Message id, for sent / delivered / acknowledged. */
  readonly id?: string | undefined
  /** Sender of a delivered message. */
  readonly from?: NodeId | undefined
  readonly digest?: string | undefined
  /** The layer that traced it (`psync`, `order` …). */
  readonly layer?: string | undefined
  /** Direct causal predecessors of a sent or delivered message. */
  readonly deps?: readonly string[] | undefined
  /** Depth of a message; the wave number of a `wave` record. */
  readonly depth?: number | undefined
  /** Message ids of a completed wave. */
  readonly ids?: readonly string[] | undefined
  /** Members of an installed view. */
  readonly view?: readonly NodeId[] | undefined
  readonly viewId?: number | undefined
  /** The data of a record a package declared (`trace.record`). */
  readonly data?: unknown
}

/** A record of a declared kind, its data typed. */
export type DeclaredRecord<K extends keyof TraceRecords> = HistoryRecord & {
  readonly kind: K
  readonly group: string
  readonly layer: string
  readonly data: TraceRecords[K]
}

export class History {
  readonly records: HistoryRecord[] = []

  add(record: HistoryRecord): void {
    this.records.push(record)
  }

  of(kind: RecordKind, node?: NodeId, group?: string, layer?: string): HistoryRecord[] {
    return this.records.filter(
      (r) =>
        r.kind === kind &&
        (node === undefined || r.node === node) &&
        (group === undefined || r.group === group) &&
        (layer === undefined || r.layer === layer),
    )
  }

  /** The records of a kind a package declared in `TraceRecords`, in time order. */
  declared<K extends keyof TraceRecords>(
    kind: K,
    node?: NodeId,
    group?: string,
  ): DeclaredRecord<K>[] {
    return this.of(kind, node, group) as DeclaredRecord<K>[]
  }

  sent(node?: NodeId, group?: string): HistoryRecord[] {
    return this.of('sent', node, group)
  }

  delivered(node?: NodeId, group?: string): HistoryRecord[] {
    return this.of('delivered', node, group)
  }

  acknowledged(node?: NodeId, group?: string): HistoryRecord[] {
    return this.of('acknowledged', node, group)
  }

  views(node?: NodeId, group?: string): HistoryRecord[] {
    return this.of('view', node, group)
  }

  /** Nodes that never crashed, or were restarted and did not crash again. */
  upAtEnd(nodes: readonly NodeId[]): NodeId[] {
    const up = new Set(nodes)
    for (const r of this.records) {
      if (r.kind === 'crash') up.delete(r.node)
      else if (r.kind === 'restart') up.add(r.node)
    }
    return nodes.filter((n) => up.has(n))
  }

  /** Nodes that never crashed during the run. */
  neverCrashed(nodes: readonly NodeId[]): NodeId[] {
    const crashed = new Set(this.records.filter((r) => r.kind === 'crash').map((r) => r.node))
    return nodes.filter((n) => !crashed.has(n))
  }
}
