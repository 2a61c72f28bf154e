/**
 * `pnpm bench transport`: messages/s through `@consul/transport-udp` on loopback between two
 * processes, next to the raw-UDP baseline (plain `node:dgram` datagrams, no framing) measured
 * in the same run, for 64-byte and 1 KiB payloads. The transport runs as configured in
 * production: bundling on (end of event-loop turn) and HMAC-SHA-256 on every datagram. The
 * receiver is a child process (this file, started with CONSUL_BENCH_ROLE=udp-receiver) that
 * counts delivered messages; the rate is what arrived during the sending window.
 *
 * Bundling has to pay for itself: `udpMsgs64` should be several times `rawPps64`, because a
 * 1400-byte datagram carries 21 messages of 64 bytes for one system call and one HMAC.
 */
import { fork } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { fileURLToPath } from 'node:url'
import { udp } from '@consul/transport-udp'
import { rawUdpBaseline } from './raw-udp.js'

const ROLE = 'CONSUL_BENCH_ROLE'
const HOST = '127.0.0.1'
const KEY = new Uint8Array(32).fill(0x5a)
/** Messages handed to `send` per event-loop turn (one bundle flush per turn). */
const MESSAGES_PER_TURN = 512

interface ReceiverReady {
  readonly port: number
}
interface ReceiverCount {
  readonly messages: number
  readonly datagrams: number
  readonly dropped: number
}

export interface UdpThroughput {
  /** Messages per second delivered to the receiver's handler. */
  readonly msgs: number
  /** Datagrams per second that reached the receiver. */
  readonly datagrams: number
  readonly sent: number
  readonly received: number
}

async function freePort(): Promise<number> {
  const socket = createSocket('udp4')
  await new Promise<void>((resolve) => socket.bind(0, HOST, resolve))
  const { port } = socket.address()
  await new Promise<void>((resolve) => socket.close(resolve))
  return port
}

function nextMessage<T>(child: ReturnType<typeof fork>): Promise<T> {
  return new Promise((resolve) => child.once('message', (m) => resolve(m as T)))
}

/** Sends `payloadBytes` messages for `durationMs` to a transport in a child process. */
export async function udpThroughput(
  payloadBytes: number,
  durationMs = 2000,
): Promise<UdpThroughput> {
  const senderPort = await freePort()
  const child = fork(fileURLToPath(import.meta.url), [], {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, [ROLE]: 'udp-receiver' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const ready = nextMessage<ReceiverReady>(child)
  child.send({ senderPort })
  const { port } = await ready
  const sender = await udp({
    self: 'a',
    peers: { b: { host: HOST, port } },
    host: HOST,
    port: senderPort,
    key: KEY,
  })
  const payload = new Uint8Array(payloadBytes).fill(7)
  let sent = 0
  const deadline = performance.now() + durationMs
  await new Promise<void>((resolve) => {
    const pump = () => {
      for (let i = 0; i < MESSAGES_PER_TURN; i++) sender.send('b', payload)
      sent += MESSAGES_PER_TURN
      if (performance.now() < deadline) setImmediate(pump)
      else resolve()
    }
    pump()
  })
  await new Promise((resolve) => setTimeout(resolve, 50))
  const counted = nextMessage<ReceiverCount>(child)
  child.send({ stop: true })
  const { messages, datagrams } = await counted
  await sender.close()
  child.kill()
  const seconds = durationMs / 1000
  return {
    msgs: Math.round(messages / seconds),
    datagrams: Math.round(datagrams / seconds),
    sent,
    received: messages,
  }
}

export async function benchTransport(): Promise<Record<string, number>> {
  const raw64 = await rawUdpBaseline(64, 2000)
  const udp64 = await udpThroughput(64, 2000)
  const raw1k = await rawUdpBaseline(1024, 2000)
  const udp1k = await udpThroughput(1024, 2000)
  return {
    rawPps64: raw64.pps,
    udpMsgs64: udp64.msgs,
    udpDatagrams64: udp64.datagrams,
    udpVsRaw64: Math.round((udp64.msgs / raw64.pps) * 100) / 100,
    udpDelivered64: Math.round((udp64.received / udp64.sent) * 1000) / 1000,
    rawPps1k: raw1k.pps,
    udpMsgs1k: udp1k.msgs,
    udpVsRaw1k: Math.round((udp1k.msgs / raw1k.pps) * 100) / 100,
    udpDelivered1k: Math.round((udp1k.received / udp1k.sent) * 1000) / 1000,
  }
}

/** The child side: a transport that counts what it receives until told to stop. */
async function runReceiver(): Promise<void> {
  const { senderPort } = await new Promise<{ senderPort: number }>((resolve) =>
    process.once('message', (m) => resolve(m as { senderPort: number })),
  )
  const receiver = await udp({
    self: 'b',
    peers: { a: { host: HOST, port: senderPort } },
    host: HOST,
    port: 0,
    key: KEY,
  })
  let messages = 0
  receiver.onReceive(() => {
    messages++
  })
  process.send?.({ port: receiver.address().port } satisfies ReceiverReady)
  process.once('message', () => {
    const stats = receiver.stats()
    let dropped = 0
    for (const [name, value] of Object.entries(stats))
      if (name.startsWith('drop.')) dropped += value
    const count: ReceiverCount = {
      messages,
      datagrams: stats['received.datagrams'] ?? 0,
      dropped,
    }
    process.send?.(count, () => process.exit(0))
  })
}

if (process.env[ROLE] === 'udp-receiver') await runReceiver()
