/**
 * Seeded randomness. Protocol code draws jitter, backoff and sampling from a `Random` so a
 * simulation with the same seed makes the same choices. The generator is xoshiro128**
 * seeded through splitmix32: fast, 128 bits of state, good statistical quality, and small
 * enough to fork one independent stream per protocol and group.
 */

export interface Random {
  /** A float in [0, 1). */
  next(): number
  /** An unsigned 32-bit integer. */
  uint32(): number
  /** An integer in [0, maxExclusive); `maxExclusive` must be a positive integer ≤ 2^32. */
  int(maxExclusive: number): number
  /**
   * An independent stream derived from this one's seed and `label`, without drawing from
   * this stream (so adding a fork does not shift anyone else's numbers).
   */
  fork(label: string): Random
  /** The seed this stream was made from. */
  readonly seed: number
}

function splitmix32(state: number): () => number {
  let s = state >>> 0
  return () => {
    s = (s + 0x9e3779b9) >>> 0
    let z = s
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0
    return (z ^ (z >>> 16)) >>> 0
  }
}

/** 32-bit FNV-1a of a string's UTF-16 code units; stable across runs and platforms. */
export function hashString(text: string, seed = 0x811c9dc5): number {
  let h = seed >>> 0
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

/**
 * 32-bit FNV-1a of bytes, as 8 hex digits: the content digest protocols put on `trace.*`
 * records so checkers can tell two messages that share an id apart. Not cryptographic.
 */
export function digestBytes(bytes: Uint8Array): string {
  let h = 0x811c9dc5
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i]!
    h = Math.imul(h, 0x01000193)
  }
  return (h >>> 0).toString(16).padStart(8, '0')
}

class Xoshiro128 implements Random {
  private a: number
  private b: number
  private c: number
  private d: number

  constructor(readonly seed: number) {
    const mix = splitmix32(seed)
    this.a = mix()
    this.b = mix()
    this.c = mix()
    this.d = mix()
    if ((this.a | this.b | this.c | this.d) === 0) this.a = 1
  }

  uint32(): number {
    const result = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0
    const t = this.b << 9
    this.c ^= this.a
    this.d ^= this.b
    this.b ^= this.c
    this.a ^= this.d
    this.c ^= t
    this.d = rotl(this.d, 11)
    return result
  }

  next(): number {
    return this.uint32() / 4294967296
  }

  int(maxExclusive: number): number {
    if (!Number.isInteger(maxExclusive) || maxExclusive <= 0 || maxExclusive > 4294967296) {
      throw new RangeError(`int(max) needs an integer max in 1..2^32, got ${maxExclusive}`)
    }
    // Rejection sampling: no modulo bias.
    const limit = 4294967296 - (4294967296 % maxExclusive)
    for (;;) {
      const x = this.uint32()
      if (x < limit) return x % maxExclusive
    }
  }

  fork(label: string): Random {
    return new Xoshiro128(hashString(label, this.seed ^ 0x6a09e667))
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k))
}

/** A deterministic generator: the same seed gives the same sequence on every platform. */
export function seededRandom(seed: number): Random {
  if (!Number.isInteger(seed)) throw new RangeError(`seed must be an integer, got ${seed}`)
  return new Xoshiro128(seed >>> 0)
}
