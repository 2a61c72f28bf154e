/**
 * `ProtocolInstance.stats()` for a protocol with one session per group: each gauge is the
 * highest any open session reports (so a host with several groups shows its worst one).
 */
export function maxGauges(
  sessions: Iterable<{ gauges(): Record<string, number> }>,
): Record<string, number> {
  const out: Record<string, number> = {}
  for (const s of sessions)
    for (const [k, v] of Object.entries(s.gauges())) out[k] = Math.max(out[k] ?? 0, v)
  return out
}
