/**
 * The raw-UDP baseline every benchmark reports beside its own numbers: plain `node:dgram`
 * datagrams on loopback between two processes, with no framing, integrity or protocol.
 * The receiver runs in a child process and counts what arrives during the window.
 */
import { fork } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { fileURLToPath } from 'node:url'

export interface RawUdpResult {
  /** Datagrams per second received. */
  readonly pps: number
  readonly sent: number
  readonly received: number
}

/** Measures loopback datagrams/s for `payloadBytes`, sending for `durationMs`. */
export async function rawUdpBaseline(
  payloadBytes: number,
  durationMs = 2000,
): Promise<RawUdpResult> {
  const child = fork(fileURLToPath(new URL('./raw-udp-receiver.ts', import.meta.url)), [], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const port = await new Promise<number>((resolve) =>
    child.once('message', (m) => resolve((m as { port: number }).port)),
  )
  const socket = createSocket('udp4')
  const payload = Buffer.alloc(payloadBytes, 7)
  let sent = 0
  const deadline = performance.now() + durationMs
  // Keep a bounded number of sends in flight so we measure the path, not the send buffer.
  await new Promise<void>((resolve) => {
    let inFlight = 0
    const pump = () => {
      while (inFlight < 64 && performance.now() < deadline) {
        inFlight++
        sent++
        socket.send(payload, port, '127.0.0.1', () => {
          inFlight--
          if (inFlight < 32) pump()
        })
      }
      if (performance.now() >= deadline && inFlight === 0) resolve()
      else if (performance.now() >= deadline) setTimeout(pump, 1)
    }
    pump()
  })
  child.send({ stop: true })
  const received = await new Promise<number>((resolve) =>
    child.once('message', (m) => resolve((m as { received: number }).received)),
  )
  socket.close()
  child.kill()
  return { pps: Math.round(received / (durationMs / 1000)), sent, received }
}
