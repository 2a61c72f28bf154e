/**
 * The network as the framework sees it: unreliable datagrams between named members. An
 * implementation may lose, duplicate or reorder datagrams, but must not corrupt or create
 * them (integrity is its job: a transport drops what fails its checks and counts it).
 *
 * Ownership: `send` takes ownership of `data` (the caller must not change it afterwards);
 * the receive handler owns the bytes it is given.
 */
export type NodeId = string

export type ReceiveHandler = (from: NodeId, data: Uint8Array) => void

export interface Transport {
  /** This member's id. */
  readonly self: NodeId
  /** The other members this transport can reach (not including `self`). */
  peers(): readonly NodeId[]
  /**
   * Sends one datagram to `to`. Never throws for network trouble (unreachable, buffer full):
   * those are counted in `stats()`. Throws `TypeError` for an unknown member.
   */
  send(to: NodeId, data: Uint8Array): void
  /** Sends one datagram to every peer. */
  broadcast(data: Uint8Array): void
  /** Sets the one receive handler (a later call replaces it). */
  onReceive(handler: ReceiveHandler): void
  /** Counters (sent, received, dropped by reason …). */
  stats(): Record<string, number>
  /** Stops receiving and frees resources; idempotent. */
  close(): Promise<void>
}
