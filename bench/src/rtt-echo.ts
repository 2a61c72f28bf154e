/** Child process of the raw ping-pong RTT baseline (order.ts): echoes every datagram back. */
import { createSocket } from 'node:dgram'

const socket = createSocket('udp4')
socket.on('message', (data, from) => {
  socket.send(data, from.port, from.address)
})
socket.bind(0, '127.0.0.1', () => {
  process.send?.({ port: socket.address().port })
})
process.on('message', () => {
  socket.close()
  process.exit(0)
})
