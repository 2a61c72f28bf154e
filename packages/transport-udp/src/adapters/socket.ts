/**
 * The `node:dgram` adapter: the only file of this package that touches real sockets and the
 * event loop (it lives under `src/adapters/`, the folder the determinism lint rule exempts;
 * `first-message-id.ts` and `hmac.ts` beside it use `node:crypto`). It binds, reports bind
 * failures as `UdpTransportError`s that name the address, and hides `dgram` behind
 * `DatagramSocket`.
 *
 * Invariant: nothing here throws after binding: a send that fails synchronously reports
 * through its `done` callback like one that fails later, and socket errors go to the error
 * handler (a socket without an `'error'` listener would crash the process).
 */
import { createSocket, type Socket } from 'node:dgram'
import type { IpFamily } from '../address.js'
import type {
  BoundAddress,
  DatagramHandler,
  DatagramSocket,
  Defer,
  SendDone,
} from '../datagram-socket.js'
import { UdpTransportError } from '../errors.js'

/** End of the current event-loop turn: after the I/O callbacks already pending. */
export const deferToEndOfTurn: Defer = (callback) => {
  setImmediate(callback)
}

export interface OpenSocketOptions {
  readonly family: IpFamily
  readonly host: string
  readonly port: number
  /** Asked for SO_RCVBUF and SO_SNDBUF; the OS may grant less. */
  readonly bufferBytes: number
  /** Share the port with other sockets (for the multicast receiver). */
  readonly reuseAddr?: boolean
}

export class NodeDatagramSocket implements DatagramSocket {
  private errorHandler: (error: Error) => void = () => {}
  private closed: Promise<void> | undefined
  /** Read once after binding: Node refuses `address()` on a closed socket. */
  private readonly bound: BoundAddress

  /** Wraps a bound socket. */
  constructor(private readonly socket: Socket) {
    socket.on('error', (error) => this.errorHandler(error))
    const { address, port, family } = socket.address()
    this.bound = { address, port, family: family === 'IPv6' ? 'IPv6' : 'IPv4' }
  }

  send(bytes: Uint8Array, length: number, port: number, address: string, done: SendDone): void {
    try {
      this.socket.send(bytes, 0, length, port, address, done)
    } catch (error) {
      done(error instanceof Error ? error : new Error(String(error)))
    }
  }

  onDatagram(handler: DatagramHandler): void {
    this.socket.removeAllListeners('message')
    this.socket.on('message', (message, remote) => handler(message, remote.address, remote.port))
  }

  onError(handler: (error: Error) => void): void {
    this.errorHandler = handler
  }

  address(): BoundAddress {
    return this.bound
  }

  close(): Promise<void> {
    this.closed ??= new Promise<void>((resolve) => {
      this.socket.removeAllListeners('message')
      try {
        this.socket.close(() => resolve())
      } catch {
        resolve() // already closed
      }
    })
    return this.closed
  }

  /** Joins an IP multicast group and sets how this socket sends to groups. */
  joinMulticast(group: string, iface: string | undefined): void {
    this.socket.addMembership(group, iface)
  }

  configureMulticastSending(ttl: number, iface: string | undefined): void {
    this.socket.setMulticastTTL(ttl)
    this.socket.setMulticastLoopback(true)
    if (iface !== undefined) this.socket.setMulticastInterface(iface)
  }
}

function bindError(error: NodeJS.ErrnoException, host: string, port: number): UdpTransportError {
  const where = `${host.includes(':') ? `[${host}]` : host}:${port}`
  if (error.code === 'EADDRINUSE') {
    return new UdpTransportError(
      'ADDRESS_IN_USE',
      `cannot bind UDP ${where}: port ${port} is already in use; stop the other process, pick another port, or pass port: 0 to let the OS choose`,
      { cause: error },
    )
  }
  return new UdpTransportError(
    'BIND_FAILED',
    `cannot bind UDP ${where}: ${error.code ?? error.message}; check that ${host} is an address of this machine and the port is allowed`,
    { cause: error },
  )
}

function setBuffers(socket: Socket, bytes: number): void {
  // Best effort: Linux caps at net.core.rmem_max/wmem_max, other systems may refuse.
  try {
    socket.setRecvBufferSize(bytes)
  } catch {}
  try {
    socket.setSendBufferSize(bytes)
  } catch {}
}

/** Binds a UDP socket; rejects with `UdpTransportError` when the address cannot be bound. */
export function openSocket(options: OpenSocketOptions): Promise<NodeDatagramSocket> {
  const socket = createSocket({
    type: options.family === 4 ? 'udp4' : 'udp6',
    ipv6Only: options.family === 6,
    reuseAddr: options.reuseAddr === true,
  })
  return new Promise((resolve, reject) => {
    const failed = (error: NodeJS.ErrnoException) => {
      socket.removeListener('listening', bound)
      try {
        socket.close()
      } catch {}
      reject(bindError(error, options.host, options.port))
    }
    const bound = () => {
      socket.removeListener('error', failed)
      setBuffers(socket, options.bufferBytes)
      resolve(new NodeDatagramSocket(socket))
    }
    socket.once('error', failed)
    socket.once('listening', bound)
    socket.bind({ port: options.port, address: options.host, exclusive: true })
  })
}

export interface MulticastSocketOptions {
  readonly family: IpFamily
  readonly group: string
  readonly port: number
  readonly interface: string | undefined
  readonly ttl: number
  readonly bufferBytes: number
}

/**
 * Prepares `sender` to send to the group and opens the socket that receives the group's
 * datagrams: bound to the group port on every address (shared with the other members on
 * this machine) and joined to the group.
 */
export async function openMulticast(
  sender: NodeDatagramSocket,
  options: MulticastSocketOptions,
): Promise<DatagramSocket> {
  const receiver = await openSocket({
    family: options.family,
    host: options.family === 4 ? '0.0.0.0' : '::',
    port: options.port,
    bufferBytes: options.bufferBytes,
    reuseAddr: true,
  })
  try {
    receiver.joinMulticast(options.group, options.interface)
    sender.configureMulticastSending(options.ttl, options.interface)
  } catch (error) {
    await receiver.close()
    const e = error as NodeJS.ErrnoException
    throw new UdpTransportError(
      'BIND_FAILED',
      `cannot join multicast group ${options.group}${options.interface === undefined ? '' : ` on ${options.interface}`}: ${e.code ?? e.message}; check the interface address and that the machine has a multicast route`,
      { cause: error },
    )
  }
  return receiver
}
