/**
 * @packageDocumentation
 * `@consul/transport-udp` — the xkernel `Transport` over UDP (`node:dgram`, IPv4 and IPv6)
 * for members at fixed addresses. Small messages to the same peer are bundled into one
 * datagram; large ones are fragmented and reassembled within time and memory bounds. Every
 * datagram carries a truncated HMAC-SHA-256 with the group key, or is encrypted with an AEAD
 * (`encrypt: true`), or carries a CRC32C without a key; every datagram carries its sender's
 * epoch and counter, and a per-sender replay window drops replays. Keyrings rotate keys at
 * run time (`setKeys`). Anything malformed, forged, replayed, foreign or from an unknown
 * address is dropped and counted by reason in `stats()`, never thrown. No ordering, no reliability: protocols above (Psync)
 * retransmit and drop duplicates.
 *
 * @example
 * ```ts
 * import { randomBytes } from 'node:crypto'
 * import { udp } from '@consul/transport-udp'
 *
 * const key = randomBytes(32) // shared by every member of the group, kept secret
 * const peers = {
 *   a: { host: '127.0.0.1', port: 7001 },
 *   b: { host: '127.0.0.1', port: 7002 },
 * }
 * const a = await udp({ self: 'a', peers, host: '127.0.0.1', port: 7001, key, groupId: 'directory' })
 * const b = await udp({ self: 'b', peers, host: '127.0.0.1', port: 7002, key, groupId: 'directory' })
 *
 * b.onReceive((from, data) => console.log(from, new TextDecoder().decode(data))) // a hello
 * a.send('b', new TextEncoder().encode('hello'))
 *
 * // later
 * console.log(b.stats()['drop.badMac'])
 * await Promise.all([a.close(), b.close()])
 * ```
 */
export type { AeadCipher } from './adapters/aead.js'
export type { DropReason } from './codec.js'
export { DROP_REASONS } from './codec.js'
export type { BoundAddress } from './datagram-socket.js'
export { UdpTransportError, type UdpTransportErrorCode } from './errors.js'
export type { GroupKey } from './integrity.js'
export { readKeyring } from './key-file.js'
export {
  DEFAULT_MAX_DATAGRAM,
  DEFAULT_MAX_SEND_QUEUE,
  DEFAULT_REASSEMBLY_MAX_BYTES,
  DEFAULT_REASSEMBLY_TIMEOUT_MS,
  DEFAULT_REPLAY_WINDOW,
  DEFAULT_SOCKET_BUFFER_BYTES,
  MIN_MAX_DATAGRAM,
  type MulticastOptions,
  type PeerAddress,
  type UdpOptions,
} from './options.js'
export type { ReassemblyLimits } from './reassembly.js'
export type { KeyStatus, UdpTransport } from './transport.js'
export { udp } from './udp.js'
