/**
 * A list of callbacks with an unsubscribe function per registration: the `onDeliver`,
 * `onWave`, `onMembersChanged` pattern every protocol's control has. Copy-on-write, so a
 * handler may unsubscribe (or subscribe another) while the list is being called.
 */
export class Listeners<Args extends readonly unknown[]> {
  private list: readonly ((...args: Args) => void)[] = []

  /** `invalid` builds the error thrown for a handler that is not a function. */
  constructor(
    private readonly invalid: () => Error = () => new TypeError('handler must be a function'),
  ) {}

  /** Registers `handler`; returns the function that removes it. */
  add(handler: (...args: Args) => void): () => void {
    if (typeof handler !== 'function') throw this.invalid()
    this.list = [...this.list, handler]
    return () => {
      this.list = this.list.filter((h) => h !== handler)
    }
  }

  get size(): number {
    return this.list.length
  }

  /** Calls every handler, in registration order. */
  emit(...args: Args): void {
    for (const handler of this.list) handler(...args)
  }
}
