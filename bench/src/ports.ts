/**
 * Loopback UDP ports for benchmark and demo processes: bind `n` sockets to port 0, read the
 * ports the OS chose, release them. (Transports need every peer's port before they start.)
 */
import { createSocket } from 'node:dgram'

export async function freeUdpPorts(n: number): Promise<number[]> {
  const sockets = await Promise.all(
    Array.from({ length: n }, () => {
      const s = createSocket('udp4')
      return new Promise<ReturnType<typeof createSocket>>((resolve) =>
        s.bind(0, '127.0.0.1', () => resolve(s)),
      )
    }),
  )
  const ports = sockets.map((s) => s.address().port)
  await Promise.all(sockets.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))))
  return ports
}
