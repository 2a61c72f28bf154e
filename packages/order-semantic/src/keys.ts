/**
 * Commutativity by keys: what a command touches (`Access`), whether two commands conflict,
 * and `Blockers` — the keys of the undelivered commands that sort before the one being
 * considered, which the keyed early-delivery rule (`wave-queue.ts`) checks against.
 *
 * Two commands conflict (do not commute) iff either touches everything (`'all'`), or they
 * share a key and at least one of them writes.
 */

/** A command's access, normalised from `keysOf`'s answer. */
export type Access =
  | { readonly all: true }
  | { readonly all: false; readonly keys: readonly string[]; readonly write: boolean }

export const ALL: Access = { all: true }

/** Normalises `keysOf`'s answer; `undefined` when it is not one. */
export function accessOf(value: unknown): Access | undefined {
  if (value === 'all') return ALL
  if (typeof value !== 'object' || value === null) return undefined
  const { keys, write } = value as { keys?: unknown; write?: unknown }
  if (typeof write !== 'boolean' || !Array.isArray(keys)) return undefined
  for (const k of keys) if (typeof k !== 'string') return undefined
  return { all: false, keys: [...(keys as string[])], write }
}

/** The conflict relation: the pairs whose relative order every replica must agree on. */
export function conflict(a: Access, b: Access): boolean {
  if (a.all || b.all) return true
  if (!a.write && !b.write) return false
  const [small, large] = a.keys.length <= b.keys.length ? [a, b] : [b, a]
  if (small.keys.length === 0) return false
  const set = new Set(large.keys)
  return small.keys.some((k) => set.has(k))
}

/**
 * Accesses of commands not delivered (yet): `conflicts(x)` is true iff `x` conflicts with at
 * least one of those added — in O(keys of `x`), not O(commands added).
 */
export class Blockers {
  private any = false
  private all = false
  /** Keys read or written by an added command. */
  private readonly touched = new Set<string>()
  /** Keys written by an added command. */
  private readonly written = new Set<string>()

  add(access: Access): void {
    this.any = true
    if (access.all) {
      this.all = true
      return
    }
    for (const k of access.keys) {
      this.touched.add(k)
      if (access.write) this.written.add(k)
    }
  }

  conflicts(access: Access): boolean {
    if (this.all) return true
    if (access.all) return this.any
    const against = access.write ? this.touched : this.written
    for (const k of access.keys) if (against.has(k)) return true
    return false
  }
}
