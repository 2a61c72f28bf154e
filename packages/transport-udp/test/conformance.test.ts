/**
 * `@consul/testkit/transport` against the UDP transport on loopback, with a key (HMAC) and
 * without (CRC32C). The harness taps `node:dgram` in this test process: `capture()` returns
 * the datagrams members sent, and `injectRaw()` sends bytes from another member's own socket,
 * so a forgery passes the source-address check and it is the MAC or CRC that must stop it.
 */
import dgram from 'node:dgram'
import { transportSuite } from '@consul/testkit/transport'
import { type UdpTransport, udp } from '../src/index.js'
import { KEY } from './fakes.js'
import { freePorts, waitFor } from './net.js'

const HOST = '127.0.0.1'
const tapped: Uint8Array[] = []
const socketsByPort = new Map<number, dgram.Socket>()
let injecting = false
const proto = dgram.Socket.prototype as unknown as Record<string, (...args: unknown[]) => unknown>
const { send, bind } = proto
proto.send = function (this: dgram.Socket, ...args: unknown[]) {
  const [msg, offset, length] = args as [Uint8Array, number, number]
  if (!injecting) tapped.push(Uint8Array.from(msg.subarray(offset, offset + length)))
  return send!.apply(this, args)
}
proto.bind = function (this: dgram.Socket, ...args: unknown[]) {
  this.once('listening', () => socketsByPort.set(this.address().port, this))
  return bind!.apply(this, args)
}

const total = (ts: readonly UdpTransport[], name: string) =>
  ts.reduce((n, t) => n + (t.stats()[name] ?? 0), 0)

for (const key of [KEY, undefined]) {
  transportSuite({
    name: `udp (${key === undefined ? 'CRC32C' : 'HMAC-SHA-256'})`,
    integrity: true,
    async create(ids) {
      const ports = await freePorts(ids.length, HOST)
      const peers = Object.fromEntries(ids.map((id, i) => [id, { host: HOST, port: ports[i]! }]))
      const transports = await Promise.all(
        ids.map((self, i) =>
          udp({ self, peers, host: HOST, port: ports[i]!, ...(key && { key }) }),
        ),
      )
      let injected = 0
      return {
        transports,
        // First the end of the turn (bundles flush then), then until every datagram sent or
        // injected has arrived, or nothing moved for 250 ms (a closed member receives nothing).
        async settle() {
          await new Promise((resolve) => setImmediate(resolve))
          let last = -1
          let quietSince = Date.now()
          await waitFor(() => {
            const arrived = total(transports, 'received.datagrams')
            if (arrived !== last) [last, quietSince] = [arrived, Date.now()]
            return (
              arrived >= total(transports, 'sent.datagrams') + injected ||
              Date.now() - quietSince > 250
            )
          }, 'datagrams in flight')
        },
        async injectRaw(to, bytes) {
          const from = transports.find((t) => t.self !== to)!
          const socket = socketsByPort.get(from.address().port)!
          injected++
          injecting = true
          try {
            await new Promise((resolve) => socket.send(bytes, peers[to]!.port, HOST, resolve))
          } finally {
            injecting = false
          }
        },
        async capture() {
          return tapped.splice(0)
        },
        close: async () => {
          await Promise.all(transports.map((t) => t.close()))
        },
      }
    },
  })
}
