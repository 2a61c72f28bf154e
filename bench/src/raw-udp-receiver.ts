/** Child process of the raw-UDP baseline: counts datagrams until told to stop. */
import { createSocket } from 'node:dgram'

const socket = createSocket('udp4')
let received = 0
socket.on('message', () => {
  received++
})
socket.bind(0, '127.0.0.1', () => {
  process.send?.({ port: socket.address().port })
})
process.on('message', () => {
  process.send?.({ received }, () => process.exit(0))
})
