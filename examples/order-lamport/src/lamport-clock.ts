/**
 * A Lamport clock [Lam78]: the time service of the Consul paper. Rule: a member stamps
 * each message it sends with a value above everything it has sent or delivered, and on
 * delivering a stamped message moves its clock past the stamp (`max(local, received) + 1`).
 *
 * Invariant: if message a is in the causal past of message b, a's stamp is below b's (b's
 * sender delivered a before sending b). So ordering by stamp extends the causal order.
 */
export class LamportClock {
  private value = 0

  /** The current value: every stamp sent or delivered so far is at most this. */
  get now(): number {
    return this.value
  }

  /** The stamp for a message about to be sent. */
  next(): number {
    this.value++
    return this.value
  }

  /** A message stamped `timestamp` was delivered (own ones included). */
  witness(timestamp: number): void {
    this.value = Math.max(this.value, timestamp) + 1
  }

  /** Never go below `value` again (a restored checkpoint's clock). */
  advanceTo(value: number): void {
    if (value > this.value) this.value = value
  }
}
