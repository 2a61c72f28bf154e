/**
 * What the transport needs from a UDP socket, so everything above the socket is plain code
 * that tests can drive with a fake (`adapters/socket.ts` is the only file that touches
 * `node:dgram`).
 */

/** Called once per datagram `send`, when the socket no longer needs the bytes. */
export type SendDone = (error: Error | null) => void

export type DatagramHandler = (bytes: Uint8Array, address: string, port: number) => void

export interface BoundAddress {
  readonly address: string
  readonly port: number
  readonly family: 'IPv4' | 'IPv6'
}

export interface DatagramSocket {
  /**
   * Sends `bytes[0, length)` to `address:port`. The bytes must stay untouched until `done`
   * runs; `done` runs exactly once, with the error if the send failed.
   */
  send(bytes: Uint8Array, length: number, port: number, address: string, done: SendDone): void
  /** Sets the one handler for incoming datagrams. */
  onDatagram(handler: DatagramHandler): void
  /** Sets the handler for errors the socket reports outside a send. */
  onError(handler: (error: Error) => void): void
  address(): BoundAddress
  /** Closes the socket (idempotent); resolves once its port is free. */
  close(): Promise<void>
}

/** Runs a callback once the current event-loop turn is over (after pending I/O callbacks). */
export type Defer = (callback: () => void) => void
