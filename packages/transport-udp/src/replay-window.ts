/**
 * The replay window of one sender, as IPsec (RFC 4303 §3.4.3) and WireGuard keep it: the
 * sender's current epoch, the highest counter accepted in it, and a bitmap of which of the
 * `size` counters up to that one were accepted. A datagram is new if its epoch is higher
 * (the sender restarted: the window starts over), or if it is in the current epoch and its
 * counter is above the highest, or inside the window and not yet seen.
 *
 * Rule: `check` is read-only and runs before the trailer is verified (it costs a few
 * comparisons, so replays and stale datagrams are dropped before any cryptography);
 * `commit` runs only after the trailer proved the datagram authentic, so a forgery can
 * never move the window.
 *
 * Invariant: a (epoch, counter) pair is committed at most once per window, so each
 * datagram a sender sent reaches the handler at most once per receiver incarnation; memory
 * is `size / 8` bytes, fixed at creation.
 */

export type ReplayVerdict = 'new' | 'newEpoch' | 'staleEpoch' | 'replayTooOld' | 'replayed'

export class ReplayWindow {
  /** The sender's current epoch; -1 before its first authentic datagram. */
  epoch = -1
  /** The highest counter accepted in `epoch`. */
  top = 0
  private readonly bits: Uint32Array
  private readonly mask: number

  /** `size` is a power of two ≥ 32: how far behind the highest counter a datagram may be. */
  constructor(readonly size: number) {
    this.bits = new Uint32Array(size / 32)
    this.mask = size - 1
  }

  check(epoch: number, counter: number): ReplayVerdict {
    if (epoch !== this.epoch) return epoch > this.epoch ? 'newEpoch' : 'staleEpoch'
    if (counter > this.top) return 'new'
    if (this.top - counter >= this.size) return 'replayTooOld'
    const bit = counter & this.mask
    return (this.bits[bit >>> 5]! & (1 << (bit & 31))) !== 0 ? 'replayed' : 'new'
  }

  /** Records an authentic datagram `check` found new (or newEpoch). */
  commit(epoch: number, counter: number): void {
    if (epoch !== this.epoch) {
      this.epoch = epoch
      this.bits.fill(0)
      this.top = counter
    } else if (counter > this.top) {
      const gap = counter - this.top
      if (gap >= this.size) this.bits.fill(0)
      else {
        // Forget the counters the window slides past (they now name future slots).
        for (let c = this.top + 1; c < counter; c++) {
          const bit = c & this.mask
          this.bits[bit >>> 5]! &= ~(1 << (bit & 31))
        }
      }
      this.top = counter
    }
    const bit = counter & this.mask
    this.bits[bit >>> 5]! |= 1 << (bit & 31)
  }
}
