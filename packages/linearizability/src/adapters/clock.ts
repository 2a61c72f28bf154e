/**
 * The real clock behind `timeoutMs` — the one place this package reads time, so the lint's
 * determinism rule (no ambient time outside `src/adapters/`) holds everywhere else; tests
 * pass their own `now`.
 */
export function realNow(): number {
  return performance.now()
}
