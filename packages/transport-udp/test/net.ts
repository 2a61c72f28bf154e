/** Helpers for tests on real loopback sockets. */
import { createSocket, type Socket } from 'node:dgram'

/**
 * `n` distinct UDP ports that were free a moment ago on `host` (bound together to port 0,
 * then released), for members that must know each other's ports before binding.
 */
export async function freePorts(n: number, host = '127.0.0.1'): Promise<number[]> {
  const sockets: Socket[] = []
  for (let i = 0; i < n; i++) {
    const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4')
    await new Promise<void>((resolve) => socket.bind(0, host, resolve))
    sockets.push(socket)
  }
  const ports = sockets.map((s) => s.address().port)
  await Promise.all(sockets.map((s) => new Promise<void>((resolve) => s.close(resolve))))
  return ports
}

/** Resolves once `check()` is true; rejects with `what` after `timeoutMs`. */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 5000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

/** A raw socket bound to an ephemeral port, for sending forged datagrams. */
export async function rawSocket(host = '127.0.0.1'): Promise<{
  socket: Socket
  port: number
  send(bytes: Uint8Array, port: number, to?: string): Promise<void>
  close(): Promise<void>
}> {
  const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4')
  await new Promise<void>((resolve) => socket.bind(0, host, resolve))
  return {
    socket,
    port: socket.address().port,
    send: (bytes, port, to = host) =>
      new Promise<void>((resolve, reject) =>
        socket.send(bytes, port, to, (error) => (error ? reject(error) : resolve())),
      ),
    close: () => new Promise<void>((resolve) => socket.close(resolve)),
  }
}
