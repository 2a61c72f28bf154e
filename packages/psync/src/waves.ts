/**
 * Waves: wave *d* is the set of messages of depth *d*. It is complete once every counted
 * member has sent a message of depth ≥ *d* — from then on nothing of depth *d* can still
 * arrive, so its contents are the same at every member — and once every member excluded
 * with a cut has all its messages up to the cut here (they count everywhere, so a wave that
 * may hold one of them waits for it). Complete waves are reported in order, none skipped.
 *
 * Also the prune floor: the depth below which stable messages may be pruned — the floor
 * checkpointing declared, lowered to keep `retainWaves` complete waves — never above the
 * first incomplete wave.
 *
 * Invariants: `next` only grows; after a restart it starts at the wave above every pruned
 * message (the waves between a checkpoint and the pruned prefix are reported again);
 * `declaredFloor` only grows.
 */

/** What wave completion is judged from (the session's view of the graph and the list). */
export interface WaveInputs {
  readonly memberCount: number
  readonly active: readonly boolean[]
  readonly cut: readonly (number | undefined)[]
  /** Depth of member p's last (durable) message, or of its highest pruned one. */
  memberDepth(p: number): number
  has(member: number, seq: number): boolean
}

/** Every counted member has passed `depth` and every excluded member's cut is here. */
export function waveComplete(depth: number, inputs: WaveInputs): boolean {
  let any = false
  for (let p = 0; p < inputs.memberCount; p++) {
    if (!inputs.active[p]) {
      const cut = inputs.cut[p]
      if (cut !== undefined && cut > 0 && !inputs.has(p, cut)) return false
      continue
    }
    any = true
    if (inputs.memberDepth(p) < depth) return false
  }
  return any
}

/**
 * The prune floor: `declared` lowered to keep `retain` complete waves below `nextWave`, or
 * `retain` alone without a declared floor; 0 when neither is set; never above `nextWave`.
 */
export function pruneFloor(
  nextWave: number,
  retain: number | undefined,
  declared: number | undefined,
): number {
  const kept = retain === undefined ? undefined : nextWave - retain
  const floor =
    kept === undefined ? (declared ?? 0) : declared === undefined ? kept : Math.min(kept, declared)
  return Math.min(floor, nextWave)
}

export class WaveTracker {
  /** The next wave to complete. */
  next = 0
  /** The floor checkpointing declared (`setPruneFloor`); undefined until declared. */
  declaredFloor: number | undefined
  /** The floor the last prune ran with. */
  prunedFloor = 0

  constructor(private readonly retainWaves: number | undefined) {}

  /** Completes every wave that can be, in order; calls `completed` for each. */
  advance(inputs: WaveInputs, completed: (wave: number) => void): void {
    while (waveComplete(this.next, inputs)) completed(this.next++)
  }

  /** Raises the declared floor (a lower value is ignored). */
  declare(depth: number): void {
    this.declaredFloor = Math.max(this.declaredFloor ?? 0, depth)
  }

  floor(): number {
    return pruneFloor(this.next, this.retainWaves, this.declaredFloor)
  }

  /** After a restart: resume above every pruned message; remember the floor last used. */
  resume(prunedDepths: readonly number[], floor: number, declared: boolean): void {
    this.next = Math.max(-1, ...prunedDepths) + 1
    if (declared) this.declaredFloor = floor
    this.prunedFloor = Math.min(floor, this.next)
  }
}
