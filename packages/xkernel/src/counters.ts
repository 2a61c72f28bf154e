/**
 * Counters a protocol keeps for `host.stats()`: monotonically increasing counts (drops by
 * reason, retransmissions …) and gauges (current sizes). Plain numbers in an object, so
 * incrementing one on the hot path is a property write.
 */
export class Counters {
  private readonly values: Record<string, number> = Object.create(null)

  /** Adds `n` (default 1) to counter `name`. */
  inc(name: string, n = 1): void {
    this.values[name] = (this.values[name] ?? 0) + n
  }

  /** Sets gauge `name` to `value`. */
  set(name: string, value: number): void {
    this.values[name] = value
  }

  get(name: string): number {
    return this.values[name] ?? 0
  }

  /** A plain copy, sorted by name. */
  snapshot(): Record<string, number> {
    const out: Record<string, number> = {}
    for (const key of Object.keys(this.values).sort()) out[key] = this.values[key]!
    return out
  }
}
