/**
 * A running hash of everything a simulation does (every event it runs, every datagram it
 * carries, every recorded delivery). Two runs with the same seed must end with the same
 * hash; a difference means something non-deterministic leaked in. Two independent 32-bit
 * lanes (FNV-1a and a murmur-style mix) give a 64-bit digest at 32-bit cost.
 */
/** The murmur lane's mix of one 32-bit word, before it is folded into the state. */
function murmurK(w: number): number {
  let k = Math.imul(w, 0xcc9e2d51)
  k = (k << 15) | (k >>> 17)
  return Math.imul(k, 0x1b873593)
}

const MURMUR_K = Int32Array.from({ length: 256 }, (_, c) => murmurK(c))
/** 0x01000193³ mod 2^32. */
const FNV_PRIME_CUBED = Math.imul(Math.imul(0x01000193, 0x01000193), 0x01000193)

export class TraceHash {
  private a = 0x811c9dc5
  private b = 0x9747b28c

  number(value: number): void {
    // Times are fractional: hash the integer microseconds, exact for the values we use.
    const v = Math.round(value * 1000)
    const lo = v >>> 0
    const hi = Math.floor(v / 4294967296) >>> 0
    this.word(lo)
    this.word(hi)
  }

  word(w: number): void {
    this.a = Math.imul(this.a ^ (w & 0xff), 0x01000193)
    this.a = Math.imul(this.a ^ ((w >>> 8) & 0xff), 0x01000193)
    this.a = Math.imul(this.a ^ ((w >>> 16) & 0xff), 0x01000193)
    this.a = Math.imul(this.a ^ (w >>> 24), 0x01000193)
    let k = Math.imul(w, 0xcc9e2d51)
    k = (k << 15) | (k >>> 17)
    k = Math.imul(k, 0x1b873593)
    this.b ^= k
    this.b = (this.b << 13) | (this.b >>> 19)
    this.b = (Math.imul(this.b, 5) + 0xe6546b64) | 0
  }

  string(text: string): void {
    this.word(text.length)
    // `word(c)` for each UTF-16 unit, unrolled: a unit's top two bytes are 0, so the FNV lane's
    // last three rounds are one multiplication by FNV_PRIME³ (mod 2^32), and the murmur mix of
    // a unit below 256 comes from a table. The same digest, at half the work.
    let a = this.a
    let b = this.b
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i)
      a = Math.imul(Math.imul(a ^ (c & 0xff), 0x01000193) ^ (c >>> 8), FNV_PRIME_CUBED)
      const k = c < 256 ? MURMUR_K[c]! : murmurK(c)
      b ^= k
      b = (b << 13) | (b >>> 19)
      b = (Math.imul(b, 5) + 0xe6546b64) | 0
    }
    this.a = a
    this.b = b
  }

  bytes(data: Uint8Array): void {
    this.word(data.length)
    let i = 0
    for (; i + 4 <= data.length; i += 4) {
      this.word(data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24))
    }
    for (; i < data.length; i++) this.word(data[i]!)
  }

  /** 16 hex digits. */
  digest(): string {
    return (
      (this.a >>> 0).toString(16).padStart(8, '0') + (this.b >>> 0).toString(16).padStart(8, '0')
    )
  }
}
