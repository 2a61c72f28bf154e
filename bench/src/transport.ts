/**
 * `pnpm bench transport`: messages/s through `@consul/transport-udp` on loopback between two
 * processes, next to the raw-UDP baseline (plain `node:dgram` datagrams, no framing) measured
 * in the same run, for 64-byte and 1 KiB payloads. The transport runs as configured in
 * production: bundling on (end of event-loop turn), the replay window on, and HMAC-SHA-256
 * on every datagram (`udpMsgs64`, `udpMsgs1k`, also `udpMsgs64Hmac`); then the same with AEAD
 * (`encrypt: true`, AES-256-GCM), with CRC32C only (no key), with the replay window off (its
 * cost), and with a third process flooding the receiver with garbage at the raw datagram
 * rate. The receiver is a child process (this file, started with CONSUL_BENCH_ROLE=
 * udp-receiver) that counts delivered messages; the rate is what arrived during the sending
 * window. `replayDropped` is how many of a replayed run's datagrams the receiver dropped and
 * counted (it must be all of them).
 *
 * Bundling has to pay for itself: `udpMsgs64` should be several times `rawPps64`, because a
 * 1400-byte datagram carries 20 messages of 64 bytes for one system call and one HMAC.
 * Aims (issue #16): AEAD ≥ 0.8 × HMAC, the replay window ≤ 5 %, the flood ≤ 20 %.
 */
import { fork } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { fileURLToPath } from 'node:url'
import { udp } from '@consul/transport-udp'
import { hashString } from '@consul/xkernel'
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
  readonly replayDropped: number
  /** The receiver's CPU time (user + system) from ready to stop, in µs. */
  readonly cpuUs: number
}

/** How the transport under test is configured. */
export interface TransportMode {
  /** HMAC or AEAD with a key; CRC32C without. */
  readonly integrity: 'hmac' | 'aead' | 'crc'
  /** 0 turns the replay window off (to measure its cost). */
  readonly replayWindow?: number
  /** Flood the receiver with garbage from a third process while measuring. */
  readonly flood?: boolean
  /** Replay every datagram once more after the run, and count what the receiver drops. */
  readonly replay?: boolean
}

const HMAC: TransportMode = { integrity: 'hmac' }

function modeOptions(mode: TransportMode) {
  return {
    ...(mode.integrity === 'crc' ? {} : { key: KEY }),
    ...(mode.integrity === 'aead' ? { encrypt: true } : {}),
    ...(mode.replayWindow === undefined ? {} : { replayWindow: mode.replayWindow }),
  }
}

export interface UdpThroughput {
  /** Messages per second delivered to the receiver's handler. */
  readonly msgs: number
  /** Datagrams per second that reached the receiver. */
  readonly datagrams: number
  readonly sent: number
  readonly received: number
  /**
   * CPU µs per delivered message, sender + receiver process: on a shared machine this is
   * steadier than the rate, so the ratios below also come from it.
   */
  readonly cpuUsPerMsg: number
  /** Garbage datagrams/s the flooder sent (0 without a flood). */
  readonly floodPps: number
  /** Datagrams of the run replayed, and how many of them the receiver dropped as replays. */
  readonly replayed: number
  readonly replayDropped: number
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
  mode: TransportMode = HMAC,
): Promise<UdpThroughput> {
  const senderPort = await freePort()
  const child = fork(fileURLToPath(import.meta.url), [], {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, [ROLE]: 'udp-receiver' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const ready = nextMessage<ReceiverReady>(child)
  child.send({ senderPort, mode })
  const { port } = await ready
  // Recorded for the replay: a tap on this process's datagram socket.
  const recorded: Uint8Array[] = []
  const sender = await udp({
    self: 'a',
    peers: { b: { host: HOST, port } },
    host: HOST,
    port: senderPort,
    ...modeOptions(mode),
  })
  let flooder: ReturnType<typeof fork> | undefined
  let flooded: Promise<{ sent: number }> | undefined
  if (mode.flood === true) {
    flooder = fork(fileURLToPath(import.meta.url), [], {
      execArgv: ['--import', 'tsx'],
      env: { ...process.env, [ROLE]: 'udp-flooder' },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    })
    flooded = nextMessage<{ sent: number }>(flooder)
    flooder.send({ port, durationMs, integrity: mode.integrity })
  }
  if (mode.replay === true) tapSends(senderPort, recorded)
  const payload = new Uint8Array(payloadBytes).fill(7)
  let sent = 0
  const cpuBefore = process.cpuUsage()
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
  const senderCpu = process.cpuUsage(cpuBefore)
  const floodSent = flooded === undefined ? 0 : (await flooded).sent
  flooder?.kill()
  let replayed = 0
  if (mode.replay === true) {
    // An on-path attacker's replay of the whole run, from the sender's own address.
    tapping = false
    for (const d of recorded) {
      await new Promise<void>((resolve) => rawSend!(d, port, () => resolve()))
      replayed++
    }
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  const counted = nextMessage<ReceiverCount>(child)
  child.send({ stop: true })
  const { messages, datagrams, replayDropped, cpuUs } = await counted
  await sender.close()
  untap()
  child.kill()
  const seconds = durationMs / 1000
  return {
    msgs: Math.round(messages / seconds),
    datagrams: Math.round(datagrams / seconds),
    sent,
    received: messages,
    cpuUsPerMsg:
      Math.round(((senderCpu.user + senderCpu.system + cpuUs) / Math.max(1, messages)) * 100) / 100,
    floodPps: Math.round(floodSent / seconds),
    replayed,
    replayDropped,
  }
}

// The replay needs the sender's datagrams and its socket (a replay from another port would
// be dropped as addressMismatch before the window is even consulted): tap `dgram` sends.
const proto = (await import('node:dgram')).Socket.prototype as unknown as Record<
  string,
  (...args: unknown[]) => unknown
>
const originalSend = proto.send!
let tapping = false
let rawSend: ((bytes: Uint8Array, port: number, done: () => void) => void) | undefined
function tapSends(localPort: number, into: Uint8Array[]): void {
  tapping = true
  proto.send = function (this: import('node:dgram').Socket, ...args: unknown[]) {
    if (this.address().port === localPort) {
      rawSend ??= (bytes, port, done) => originalSend.call(this, bytes, port, HOST, done)
      if (tapping) {
        const [msg, offset, length] = args as [Uint8Array, number, number]
        into.push(Uint8Array.from(msg.subarray(offset, offset + length)))
      }
    }
    return originalSend.apply(this, args)
  }
}
function untap(): void {
  proto.send = originalSend
  tapping = false
  rawSend = undefined
}

export async function benchTransport(): Promise<Record<string, number>> {
  const raw64 = await rawUdpBaseline(64, 2000)
  // A discarded warm-up: the first run in a process pays for compiling the transport, which
  // made whichever mode ran first look slower (0.7 × the same mode run later).
  await udpThroughput(64, 1000)
  const udp64 = await udpThroughput(64, 2000)
  const aead64 = await udpThroughput(64, 2000, { integrity: 'aead' })
  const crc64 = await udpThroughput(64, 2000, { integrity: 'crc' })
  const noWindow64 = await udpThroughput(64, 2000, { integrity: 'hmac', replayWindow: 0 })
  const flood64 = await udpThroughput(64, 2000, { integrity: 'hmac', flood: true })
  const raw1k = await rawUdpBaseline(1024, 2000)
  const udp1k = await udpThroughput(1024, 2000)
  const aead1k = await udpThroughput(1024, 2000, { integrity: 'aead' })
  const crc1k = await udpThroughput(1024, 2000, { integrity: 'crc' })
  const noWindow1k = await udpThroughput(1024, 2000, { integrity: 'hmac', replayWindow: 0 })
  const replay = await udpThroughput(1024, 500, { integrity: 'hmac', replay: true })
  const ratio = (a: number, b: number) => Math.round((a / b) * 100) / 100
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
    udpMsgs64Hmac: udp64.msgs,
    udpMsgs64Aead: aead64.msgs,
    udpMsgs64Crc: crc64.msgs,
    udpMsgs64NoReplayWindow: noWindow64.msgs,
    udpMsgs1kHmac: udp1k.msgs,
    udpMsgs1kAead: aead1k.msgs,
    udpMsgs1kCrc: crc1k.msgs,
    udpMsgs1kNoReplayWindow: noWindow1k.msgs,
    aeadVsHmac64: ratio(aead64.msgs, udp64.msgs),
    aeadVsHmac1k: ratio(aead1k.msgs, udp1k.msgs),
    /** Throughput with the window over without it (1 = free; aim ≥ 0.95). */
    replayWindowCost64: ratio(udp64.msgs, noWindow64.msgs),
    replayWindowCost1k: ratio(udp1k.msgs, noWindow1k.msgs),
    udpMsgs64UnderFlood: flood64.msgs,
    floodPps: flood64.floodPps,
    /** Throughput under a garbage flood over without it (aim ≥ 0.8). */
    floodVsClean64: ratio(flood64.msgs, udp64.msgs),
    cpuUsPerMsg64Hmac: udp64.cpuUsPerMsg,
    cpuUsPerMsg64Aead: aead64.cpuUsPerMsg,
    cpuUsPerMsg64NoReplayWindow: noWindow64.cpuUsPerMsg,
    cpuUsPerMsg1kHmac: udp1k.cpuUsPerMsg,
    cpuUsPerMsg1kAead: aead1k.cpuUsPerMsg,
    cpuUsPerMsg1kNoReplayWindow: noWindow1k.cpuUsPerMsg,
    /** CPU per message with the window over without it (1 = free; aim ≤ 1.05). */
    replayWindowCpu64: ratio(udp64.cpuUsPerMsg, noWindow64.cpuUsPerMsg),
    replayWindowCpu1k: ratio(udp1k.cpuUsPerMsg, noWindow1k.cpuUsPerMsg),
    /** HMAC CPU per message over AEAD's (aim ≥ 0.8, like the rate). */
    aeadVsHmacCpu64: ratio(udp64.cpuUsPerMsg, aead64.cpuUsPerMsg),
    aeadVsHmacCpu1k: ratio(udp1k.cpuUsPerMsg, aead1k.cpuUsPerMsg),
    replayed: replay.replayed,
    replayDropped: replay.replayDropped,
  }
}

/** The child side: a transport that counts what it receives until told to stop. */
async function runReceiver(): Promise<void> {
  const { senderPort, mode } = await new Promise<{ senderPort: number; mode: TransportMode }>(
    (resolve) => process.once('message', (m) => resolve(m as never)),
  )
  const receiver = await udp({
    self: 'b',
    peers: { a: { host: HOST, port: senderPort } },
    host: HOST,
    port: 0,
    ...modeOptions(mode),
  })
  let messages = 0
  receiver.onReceive(() => {
    messages++
  })
  process.send?.({ port: receiver.address().port } satisfies ReceiverReady)
  const cpuAtReady = process.cpuUsage()
  process.once('message', () => {
    const stats = receiver.stats()
    let dropped = 0
    for (const [name, value] of Object.entries(stats))
      if (name.startsWith('drop.')) dropped += value
    const count: ReceiverCount = {
      messages,
      datagrams: stats['received.datagrams'] ?? 0,
      dropped,
      replayDropped: (stats['drop.replayed'] ?? 0) + (stats['drop.replayTooOld'] ?? 0),
      cpuUs: (({ user, system }) => user + system)(process.cpuUsage(cpuAtReady)),
    }
    process.send?.(count, () => process.exit(0))
  })
}

/**
 * The flooder: garbage at the raw datagram rate, each a plausible header (this protocol,
 * version and group, the real sender's id) from the wrong address, so every datagram goes as
 * far as the cheapest check an off-path attacker can reach (`drop.addressMismatch`).
 */
async function runFlooder(): Promise<void> {
  const { port, durationMs } = await new Promise<{ port: number; durationMs: number }>((resolve) =>
    process.once('message', (m) => resolve(m as never)),
  )
  const socket = createSocket('udp4')
  const garbage = Buffer.alloc(64, 0xab)
  garbage.set([0xc5, 0x7a, 2, 1, 0, 0, 0, 0]) // magic, version 2, HMAC, group 0
  garbage.writeUInt32BE(hashString('a'), 8) // the sender's id, from another port
  let sent = 0
  const deadline = performance.now() + durationMs
  await new Promise<void>((resolve) => {
    let inFlight = 0
    const pump = () => {
      while (inFlight < 64 && performance.now() < deadline) {
        inFlight++
        sent++
        socket.send(garbage, port, HOST, () => {
          inFlight--
          if (inFlight < 32) pump()
        })
      }
      if (performance.now() >= deadline && inFlight === 0) resolve()
      else if (performance.now() >= deadline) setTimeout(pump, 1)
    }
    pump()
  })
  socket.close()
  process.send?.({ sent }, () => process.exit(0))
}

if (process.env[ROLE] === 'udp-receiver') await runReceiver()
if (process.env[ROLE] === 'udp-flooder') await runFlooder()
