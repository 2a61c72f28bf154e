/**
 * A running hash of everything a simulation does (every event it runs, every datagram it
 * carries, every recorded delivery). Two runs with the same seed must end with the same
 * hash; a difference means something non-deterministic leaked in. Two independent 32-bit
 * lanes (FNV-1a and a murmur-style mix) give a 64-bit digest at 32-bit cost.
 */
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
    for (let i = 0; i < text.length; i++) this.word(text.charCodeAt(i))
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
