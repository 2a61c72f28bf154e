/**
 * One replica process of the failover benchmark (see failover.ts): Psync, the Divider,
 * Failure Detection and the total order, on UDP with a group key and memory storage — the
 * weak configuration (a suspicion masks the member out here), or with `stack: 'strong'`
 * Membership between Failure Detection and the Order (agreed views: a suspicion is only
 * reported, and the member leaves at a view change). Instructions over IPC:
 *
 * - `setup`: a fresh host at the given ports, of the given stack; replies `ready`.
 * - `rate`: submits 100-byte commands at a fixed rate until `stop`.
 * - `window`: keeps `window` own commands un-delivered (maximum load) until `stop`.
 * - `stop`: stops submitting; replies `stopped` with the counts.
 * - `teardown`: stops the host; replies `done`. `exit`: ends the process.
 *
 * Unsolicited: `suspect` (a suspicion here, with its reason and the wall time), `view`
 * (strong: a view installed here, `MEMBERSHIP.onViewChange`) and `after` (the first command
 * delivered here after the change — a suspicion (weak) or a view (strong): ordering
 * resumed). Wall time is `performance.timeOrigin + performance.now()`, one clock for every
 * process on the machine.
 */
import { divider } from '@consul/divider'
import { failureDetection } from '@consul/failure-detection'
import { membership } from '@consul/membership'
import { totalOrder } from '@consul/order-total'
import { psync } from '@consul/psync'
import { udp } from '@consul/transport-udp'
import {
  createLogger,
  FAILURE_DETECTION,
  type FailureDetectionControl,
  type Host,
  MEMBERSHIP,
  memoryStorage,
  ORDER,
  type OrderControl,
  stack,
} from '@consul/xkernel'

/** `weak`: Failure Detection masks out on its own; `strong`: Membership agrees on views. */
export type FailoverStack = 'weak' | 'strong'

export type FailoverParentMessage =
  | {
      readonly type: 'setup'
      readonly self: string
      readonly peers: Record<string, { host: string; port: number }>
      readonly keyHex: string
      readonly suspectAfterMs?: number
      readonly stack?: FailoverStack
    }
  | { readonly type: 'rate'; readonly perSecond: number }
  | { readonly type: 'window'; readonly window: number }
  | { readonly type: 'stop' }
  | { readonly type: 'teardown' }
  | { readonly type: 'exit' }

const wall = () => performance.timeOrigin + performance.now()
const logger = createLogger({ level: 'error' })
const reply = (value: object) => process.send?.(value)

let host: Host<never> | undefined
let order: OrderControl | undefined
let running: { stop(): void } | undefined
let submitted = 0
let delivered = 0
let rejected = 0
let awaitingResume = false

async function setup(m: Extract<FailoverParentMessage, { type: 'setup' }>): Promise<void> {
  const transport = await udp({
    self: m.self,
    peers: m.peers,
    port: m.peers[m.self]!.port,
    host: '127.0.0.1',
    key: Buffer.from(m.keyHex, 'hex'),
    groupId: 'failover-bench',
    logger,
  })
  const below = stack()
    .use(psync({ logEveryMs: 0, retainWaves: 64 }))
    .use(divider())
    .use(
      failureDetection(m.suspectAfterMs === undefined ? {} : { suspectAfterMs: m.suspectAfterMs }),
    )
  const strong = m.stack === 'strong'
  const members = Object.keys(m.peers)
  let h: Host<never>
  let fd: FailureDetectionControl
  if (strong) {
    const built = await below
      .use(membership())
      .use(totalOrder({ ackDelayMs: 0 }))
      .start({ transport, storage: memoryStorage(), logger })
    const g = await built.open({ port: 'failover', members })
    g.get(MEMBERSHIP).onViewChange(({ view, left, reason }) => {
      awaitingResume = true
      reply({
        type: 'view',
        id: view.id,
        members: view.members,
        left,
        kind: reason.kind,
        at: wall(),
      })
    })
    h = built as Host<never>
    fd = g.get(FAILURE_DETECTION)
    order = g.get(ORDER)
  } else {
    const built = await below
      .use(totalOrder({ ackDelayMs: 0 }))
      .start({ transport, storage: memoryStorage(), logger })
    const g = await built.open({ port: 'failover', members })
    h = built as Host<never>
    fd = g.get(FAILURE_DETECTION)
    order = g.get(ORDER)
  }
  submitted = 0
  delivered = 0
  rejected = 0
  awaitingResume = false
  fd.onSuspect((s) => {
    // Strong: a suspicion only starts a decision; ordering resumes after the view.
    if (!strong) awaitingResume = true
    reply({ type: 'suspect', member: s.member, at: wall(), reason: s.reason })
  })
  order.onDeliver(() => {
    delivered++
    if (awaitingResume) {
      awaitingResume = false
      reply({ type: 'after', at: wall() })
    }
  })
  host = h
}

const command = new Uint8Array(100)
const ignore = () => {}
// Strong: outside the primary partition (minority, excluded) submits reject with NO_PRIMARY.
const countRejected = () => {
  rejected++
}

function submitOne(): void {
  submitted++
  order!.submit(command, { level: 'agreed' }).then(ignore, countRejected)
}

function rate(perSecond: number): void {
  const everyMs = 5
  let due = 0
  const started = performance.now()
  const timer = setInterval(() => {
    const target = Math.floor(((performance.now() - started) / 1000) * perSecond)
    for (; due < target; due++) submitOne()
  }, everyMs)
  running = { stop: () => clearInterval(timer) }
}

function window(size: number): void {
  let stopped = false
  let inFlight = 0
  const refill = () => {
    while (!stopped && inFlight < size) {
      inFlight++
      submitted++
      order!.submit(command, { level: 'agreed' }).then(
        () => {
          inFlight--
          if (inFlight < size / 2) setImmediate(refill)
        },
        () => {
          inFlight--
          rejected++
        },
      )
    }
  }
  refill()
  running = {
    stop: () => {
      stopped = true
    },
  }
}

process.on('message', (raw) => {
  const m = raw as FailoverParentMessage
  const fail = (error: unknown) =>
    reply({
      type: 'error',
      error: error instanceof Error ? (error.stack ?? error.message) : String(error),
    })
  switch (m.type) {
    case 'setup':
      setup(m).then(() => reply({ type: 'ready' }), fail)
      return
    case 'rate':
      rate(m.perSecond)
      return
    case 'window':
      window(m.window)
      return
    case 'stop':
      running?.stop()
      running = undefined
      reply({ type: 'stopped', submitted, delivered, rejected })
      return
    case 'teardown': {
      running?.stop()
      running = undefined
      const stopping = host?.stop() ?? Promise.resolve()
      host = undefined
      stopping.then(() => reply({ type: 'done' }), fail)
      return
    }
    case 'exit':
      process.exit(0)
  }
})
reply({ type: 'started' })
