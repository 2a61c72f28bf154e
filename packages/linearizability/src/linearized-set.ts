/**
 * The set of operations linearized so far, as a bitset whose memoisation key stays short.
 *
 * Known operations get bits in the order of their calls. At any node of the search every
 * operation that returned before the first remaining return is linearized, and none called
 * after it is, so the bits are all ones, then a window, then all zeros: the key holds only the
 * window (where it starts and its words). The window spans the operations that overlap the
 * search's front (plus any slow one still pending), a few words whatever the history's length,
 * which keeps memoisation cheap on a partition of tens of thousands of operations. Operations
 * with unknown outcomes may stay out for ever, so they get a range of their own, kept whole.
 */
export class LinearizedSet {
  private readonly words: Uint32Array
  private readonly knownWords: number
  /** Invariant: every known word below `low` is all ones. */
  private low = 0
  /** Invariant: every known word above `high` is zero. */
  private high = -1

  constructor(knownCount: number, unknownCount: number) {
    this.knownWords = Math.ceil(knownCount / 32)
    this.words = new Uint32Array(this.knownWords + Math.ceil(unknownCount / 32))
  }

  /** The bit of the `rank`-th operation with an unknown outcome (known ones: their rank). */
  unknownBit(rank: number): number {
    return this.knownWords * 32 + rank
  }

  add(bit: number): void {
    const word = bit >>> 5
    this.words[word] = (this.words[word]! | (1 << (bit & 31))) >>> 0
    if (word < this.knownWords && word > this.high) this.high = word
  }

  delete(bit: number): void {
    const word = bit >>> 5
    this.words[word] = (this.words[word]! & ~(1 << (bit & 31))) >>> 0
    if (word < this.knownWords && word < this.low) this.low = word
  }

  /** Equal for two sets exactly when they hold the same operations with known outcomes. */
  knownKey(): string {
    const words = this.words
    while (this.low < this.knownWords && words[this.low] === 0xffffffff) this.low++
    while (this.high >= 0 && words[this.high] === 0) this.high--
    let key = `${this.low},${Math.max(0, this.high - this.low + 1)},`
    for (let word = this.low; word <= this.high; word++) key += wordChars(words[word]!)
    return key
  }

  /** A copy of the unknown-outcome range: bit `rank` for the `rank`-th such operation. */
  unknownWords(): Uint32Array {
    return this.words.slice(this.knownWords)
  }

  /** Equal for two sets exactly when they hold the same operations. */
  key(): string {
    const words = this.words
    while (this.low < this.knownWords && words[this.low] === 0xffffffff) this.low++
    while (this.high >= 0 && words[this.high] === 0) this.high--
    let key = `${this.low},${Math.max(0, this.high - this.low + 1)},`
    for (let word = this.low; word <= this.high; word++) key += wordChars(words[word]!)
    for (let word = this.knownWords; word < words.length; word++) key += wordChars(words[word]!)
    return key
  }
}

function wordChars(word: number): string {
  return String.fromCharCode(word & 0xffff, word >>> 16)
}
