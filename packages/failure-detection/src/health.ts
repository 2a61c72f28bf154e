/**
 * Local health, as Lifeguard has it: a replica whose own event loop or timers run late must
 * not accuse others — the silence it measures is partly its own. Measured with the framework
 * clock alone (so the simulator's pauses and drift show up exactly as a real stall does):
 * each tick is set for a known time, and how late it runs is recorded.
 *
 * Invariants: `lag()` is the worst lateness within the window (0 when every tick ran on
 * time); a tick that itself ran late by more than one period is `stalled` — the messages
 * that waited behind it have not been read yet, so nobody is accused on it.
 */
export class LocalHealth {
  private readonly samples: { at: number; late: number }[] = []

  constructor(
    private readonly windowMs: number,
    private readonly periodMs: number,
  ) {}

  /** A tick set for `expected` ran at `now`; returns how late it ran. */
  tick(expected: number, now: number): number {
    const late = Math.max(0, now - expected)
    if (late > 0) this.samples.push({ at: now, late })
    while (this.samples.length > 0 && this.samples[0]!.at < now - this.windowMs)
      this.samples.shift()
    return late
  }

  /** The worst lateness within the window (ms). */
  lag(): number {
    let worst = 0
    for (const s of this.samples) if (s.late > worst) worst = s.late
    return worst
  }

  /** A tick this late has input waiting behind it: do not judge others on it. */
  stalled(late: number): boolean {
    return late > this.periodMs
  }
}
