/**
 * `udp(options)`: validates the options, binds the socket(s) and returns the transport. The
 * only asynchronous step is binding; a failure there closes whatever was opened and rejects
 * with a `UdpTransportError` naming the address.
 */
import { realClock } from '@consul/xkernel'
import { fileEpoch, wallClockEpoch } from './adapters/epoch-source.js'
import { randomFirstMessageId } from './adapters/first-message-id.js'
import { deferToEndOfTurn, openMulticast, openSocket } from './adapters/socket.js'
import type { DatagramSocket } from './datagram-socket.js'
import { resolveOptions, type UdpOptions } from './options.js'
import { type UdpTransport, UdpTransportCore } from './transport.js'

/**
 * Creates a UDP transport for member `options.self` and resolves once its socket is bound.
 * Rejects with a `UdpTransportError` for bad options (`INVALID_OPTIONS`, `INVALID_KEY`,
 * `ID_COLLISION`), an unusable `epochFile` (`EPOCH_FILE`) or when the address cannot be bound (`ADDRESS_IN_USE`, `BIND_FAILED`).
 */
export async function udp(options: UdpOptions): Promise<UdpTransport> {
  const resolved = resolveOptions(options)
  // Resolved (and, from a file, stored) before binding: a member that cannot name a fresh
  // incarnation must not send.
  const epoch =
    resolved.epoch ??
    (resolved.epochFile === undefined ? wallClockEpoch() : fileEpoch(resolved.epochFile))
  const socket = await openSocket({
    family: resolved.family,
    host: resolved.host,
    port: resolved.port,
    bufferBytes: resolved.socketBufferBytes,
  })
  let multicastSocket: DatagramSocket | undefined
  if (resolved.multicast !== undefined) {
    try {
      multicastSocket = await openMulticast(socket, {
        family: resolved.family,
        ...resolved.multicast,
        bufferBytes: resolved.socketBufferBytes,
      })
    } catch (error) {
      await socket.close()
      throw error
    }
  }
  return new UdpTransportCore(resolved, {
    socket,
    ...(multicastSocket === undefined ? {} : { multicastSocket }),
    clock: options.clock ?? realClock(),
    defer: deferToEndOfTurn,
    ...(options.logger === undefined ? {} : { logger: options.logger }),
    // Random, so a restarted sender does not reuse the ids of its previous run's messages.
    firstMessageId: randomFirstMessageId(),
    epoch,
  })
}
