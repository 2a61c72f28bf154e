/**
 * Restart with real processes: three members ('a', 'b', 'c') on loopback, each a Consul host
 * with Psync over UDP and LMDB storage in its own directory (fixtures/udp-member.ts). All
 * three send a stream of messages; we SIGKILL 'b' at random moments (seeded) and restart it
 * on the same directory and port while 'a' and 'c' keep sending. At the end each member
 * sends one empty message, we wait until all three have delivered the same messages, and
 * check what every incarnation reported:
 *
 * - atomic delivery: b's last incarnation (restored plus fetched) delivered exactly what a
 *   and c delivered;
 * - causal order (each message after its deps, each sender's seqs increasing) and no
 *   duplicates, per incarnation;
 * - one content per message id everywhere: b never reused a sequence number that had gone
 *   out (only own sends that died with the process, never durable, may be reused);
 * - each restart restored b's log: something whenever b had delivered anything, and every
 *   own message that a or c had received.
 *
 * Set PSYNC_RESTART_SEED to try other kill schedules.
 */
import { type ChildProcess, fork } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createSocket, type Socket } from 'node:dgram'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseMessageId, seededRandom } from '@consul/xkernel'
import { afterAll, describe, expect, it } from 'vitest'
import type { Delivery, MemberCommand, MemberConfig, MemberReport } from './fixtures/udp-member.js'

const memberScript = fileURLToPath(new URL('./fixtures/udp-member.ts', import.meta.url))
const packageDir = fileURLToPath(new URL('..', import.meta.url))
const HOST = '127.0.0.1'
const MEMBERS = ['a', 'b', 'c']
const PORT = 'e2e'
const KILLS = 3
const SEED = Number(process.env.PSYNC_RESTART_SEED ?? 20251127)
const SEND_EVERY_MS = 5
// Generous on purpose: three members and the test runner may share a busy 2-core machine.
const READY_TIMEOUT_MS = 20_000
const REPLY_TIMEOUT_MS = 10_000
const SETTLE_TIMEOUT_MS = 10_000

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** One process run of a member and everything it reported, in order. */
interface Incarnation {
  readonly member: string
  readonly number: number
  readonly label: string
  readonly child: ChildProcess
  readonly deliveries: Delivery[]
  readonly ids: Set<string>
  readonly exited: Promise<void>
  killedByTest: boolean
  finalId: string | undefined
  stats: Record<string, number> | undefined
}

const incarnations: Incarnation[] = []
const unexpectedExits: string[] = []
let root: string | undefined

afterAll(async () => {
  await Promise.all(
    incarnations.map((inc) => {
      if (inc.child.exitCode === null && inc.child.signalCode === null) inc.child.kill('SIGKILL')
      return inc.exited
    }),
  )
  if (root !== undefined) rmSync(root, { recursive: true, force: true })
})

/** `n` distinct UDP ports that were free a moment ago (bound together to port 0, released). */
async function freePorts(n: number): Promise<number[]> {
  const sockets: Socket[] = []
  for (let i = 0; i < n; i++) {
    const socket = createSocket('udp4')
    await new Promise<void>((resolve) => socket.bind(0, HOST, resolve))
    sockets.push(socket)
  }
  const ports = sockets.map((s) => s.address().port)
  await Promise.all(sockets.map((s) => new Promise<void>((resolve) => s.close(resolve))))
  return ports
}

function spawnMember(config: MemberConfig): Incarnation {
  const child = fork(memberScript, [JSON.stringify(config)], {
    cwd: packageDir,
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const inc: Incarnation = {
    member: config.self,
    number: config.incarnation,
    label: `${config.self}#${config.incarnation}`,
    child,
    deliveries: [],
    ids: new Set(),
    exited: new Promise<void>((resolve) => child.once('exit', () => resolve())),
    killedByTest: false,
    finalId: undefined,
    stats: undefined,
  }
  child.on('message', (report: MemberReport) => {
    if (report.type !== 'delivered') return
    for (const d of report.deliveries) {
      inc.deliveries.push(d)
      inc.ids.add(d[0])
    }
  })
  child.once('exit', (code, signal) => {
    if (!inc.killedByTest) unexpectedExits.push(`${inc.label} exited (code ${code}, ${signal})`)
  })
  incarnations.push(inc)
  return inc
}

/** The next report of `type` from `inc`; rejects if the member fails or exits first. */
function nextReport<T extends MemberReport['type']>(
  inc: Incarnation,
  type: T,
  timeoutMs: number,
): Promise<Extract<MemberReport, { type: T }>> {
  return new Promise((resolve, reject) => {
    const done = (error?: Error, report?: Extract<MemberReport, { type: T }>) => {
      clearTimeout(timer)
      inc.child.off('message', onMessage)
      inc.child.off('exit', onExit)
      if (error === undefined) resolve(report!)
      else reject(error)
    }
    const onMessage = (report: MemberReport) => {
      if (report.type === 'error') done(new Error(`${inc.label} failed: ${report.message}`))
      else if (report.type === type) done(undefined, report as Extract<MemberReport, { type: T }>)
    }
    const onExit = () => done(new Error(`${inc.label} exited before its '${type}' report`))
    const timer = setTimeout(
      () => done(new Error(`${inc.label}: no '${type}' report within ${timeoutMs} ms`)),
      timeoutMs,
    )
    inc.child.on('message', onMessage)
    inc.child.once('exit', onExit)
  })
}

const command = (inc: Incarnation, c: MemberCommand) => inc.child.send(c)

/** At most 20 entries, so a failure shows the start of a long list and its length. */
function sample(list: readonly string[]): string[] {
  return list.length <= 20 ? [...list] : [...list.slice(0, 20), `… ${list.length - 20} more`]
}

const difference = (x: ReadonlySet<string>, y: ReadonlySet<string>) =>
  [...x].filter((id) => !y.has(id)).sort()

const sameIds = (x: ReadonlySet<string>, y: ReadonlySet<string>) =>
  x.size === y.size && [...x].every((id) => y.has(id))

const senderOf = (id: string) => parseMessageId(id)!.sender
const seqOf = (id: string) => parseMessageId(id)!.seq

/** The incarnation that sent a payload (`<member>.<incarnation>.<n>`; the final one is empty). */
const incarnationOf = (payload: string) => Number(payload.split('.')[1])

/** Causal order and no duplicates within one incarnation's deliveries. */
function orderViolations(inc: Incarnation): { order: string[]; duplicates: string[] } {
  const order: string[] = []
  const duplicates: string[] = []
  const seen = new Set<string>()
  const lastSeq = new Map<string, number>()
  for (const [id, , , deps] of inc.deliveries) {
    if (seen.has(id)) {
      duplicates.push(`${inc.label}: ${id}`)
      continue
    }
    const sender = senderOf(id)
    const seq = seqOf(id)
    const previous = lastSeq.get(sender) ?? 0
    if (seq <= previous) order.push(`${inc.label}: ${id} after ${sender}:${previous}`)
    for (const dep of deps) if (!seen.has(dep)) order.push(`${inc.label}: ${id} before dep ${dep}`)
    seen.add(id)
    lastSeq.set(sender, Math.max(previous, seq))
  }
  return { order, duplicates }
}

describe('psync restart with real processes (UDP, LMDB, SIGKILL)', () => {
  it(`delivers the same messages everywhere across ${KILLS} kills and restarts of b (seed ${SEED})`, async () => {
    const started = Date.now()
    const random = seededRandom(SEED)
    root = mkdtempSync(join(tmpdir(), 'consul-psync-restart-'))
    const portList = await freePorts(MEMBERS.length)
    const ports = Object.fromEntries(MEMBERS.map((m, i) => [m, portList[i]!]))
    const keyHex = randomBytes(32).toString('hex')
    const configFor = (self: string, incarnation: number): MemberConfig => ({
      self,
      members: MEMBERS,
      ports,
      host: HOST,
      keyHex,
      dir: join(root!, self),
      port: PORT,
      incarnation,
      sendEveryMs: SEND_EVERY_MS,
    })
    const schedule: string[] = []

    const [a, firstB, c] = MEMBERS.map((m) => spawnMember(configFor(m, 0))) as [
      Incarnation,
      Incarnation,
      Incarnation,
    ]
    await Promise.all([a, firstB, c].map((inc) => nextReport(inc, 'ready', READY_TIMEOUT_MS)))
    for (const inc of [a, firstB, c]) command(inc, { cmd: 'send', on: true })

    const bs: Incarnation[] = [firstB]
    const readies: Extract<MemberReport, { type: 'ready' }>[] = []
    for (let kill = 0; kill < KILLS; kill++) {
      const runMs = 150 + random.int(1000)
      const downMs = 50 + random.int(300)
      await sleep(runMs)
      const b = bs.at(-1)!
      b.killedByTest = true
      b.child.kill('SIGKILL')
      await b.exited
      schedule.push(`${b.label} killed after ${runMs} ms, down ${downMs} ms`)
      await sleep(downMs)
      const next = spawnMember(configFor('b', kill + 1))
      bs.push(next)
      readies.push(await nextReport(next, 'ready', READY_TIMEOUT_MS))
      command(next, { cmd: 'send', on: true })
    }
    const bLast = bs.at(-1)!
    await sleep(300 + random.int(700))
    expect(unexpectedExits, 'members that died on their own').toEqual([])

    // Stop the streams, then one empty message each: its context names everything its sender
    // delivered, so the others fetch whatever they still lack.
    const live = [a, bLast, c]
    for (const inc of live) command(inc, { cmd: 'send', on: false })
    await Promise.all(
      live.map(async (inc) => {
        const finalReport = nextReport(inc, 'final', REPLY_TIMEOUT_MS)
        command(inc, { cmd: 'final' })
        inc.finalId = (await finalReport).id
      }),
    )
    const finals = live.map((inc) => inc.finalId!)
    const settleDeadline = Date.now() + SETTLE_TIMEOUT_MS
    const settled = () =>
      live.every((inc) => finals.every((id) => inc.ids.has(id))) &&
      sameIds(a.ids, bLast.ids) &&
      sameIds(a.ids, c.ids)
    while (!settled() && Date.now() < settleDeadline) await sleep(50)
    for (const inc of live) {
      const stats = nextReport(inc, 'stats', REPLY_TIMEOUT_MS)
      command(inc, { cmd: 'stats' })
      inc.stats = (await stats).stats
    }
    expect(unexpectedExits, 'members that died on their own').toEqual([])

    const restoredOf = (inc: Incarnation) => inc.deliveries.filter((d) => d[1])
    const summary = {
      seed: SEED,
      settled: settled(),
      seconds: (Date.now() - started) / 1000,
      schedule,
      recovered: readies.map((r) => r.recovered),
      delivered: Object.fromEntries(
        incarnations.map((inc) => [
          inc.label,
          { all: inc.deliveries.length, restored: restoredOf(inc).length },
        ]),
      ),
      psync: Object.fromEntries(live.map((inc) => [inc.label, inc.stats])),
    }

    console.log(JSON.stringify(summary))

    // Soft expectations: a failure lists every invariant that broke, not just the first.
    // (1) Atomic delivery: the same ids everywhere, b's last incarnation included.
    for (const id of finals) {
      for (const inc of live)
        expect.soft(inc.ids.has(id), `${inc.label} delivered ${id}`).toBe(true)
    }
    for (const [x, y] of [
      [a, bLast],
      [bLast, a],
      [c, bLast],
      [bLast, c],
      [a, c],
      [c, a],
    ] as const) {
      expect
        .soft(
          sample(difference(x.ids, y.ids)),
          `seed ${SEED}: delivered by ${x.label}, not by ${y.label}`,
        )
        .toEqual([])
    }

    // (2) Causal order and (3) no duplicates, per incarnation (dead ones too).
    const order: string[] = []
    const duplicates: string[] = []
    for (const inc of incarnations) {
      const found = orderViolations(inc)
      order.push(...found.order)
      duplicates.push(...found.duplicates)
    }
    expect.soft(sample(order), `seed ${SEED}: causal order`).toEqual([])
    expect.soft(sample(duplicates), `seed ${SEED}: delivered twice`).toEqual([])

    // (4) One content per id. A killed incarnation's own sends are delivered locally at once
    // but go on the wire only once durable, so those that died with the process were never
    // seen elsewhere and their sequence numbers may be reused; everything else must agree.
    const content = new Map<string, { payload: string; where: string }>()
    const conflicts: string[] = []
    const tentative: { inc: Incarnation; id: string; payload: string }[] = []
    for (const inc of incarnations) {
      for (const [id, restored, payload] of inc.deliveries) {
        if (inc.killedByTest && !restored && senderOf(id) === inc.member) {
          tentative.push({ inc, id, payload })
          continue
        }
        const first = content.get(id)
        if (first === undefined) content.set(id, { payload, where: inc.label })
        else if (first.payload !== payload) {
          conflicts.push(
            `${id}: '${first.payload}' at ${first.where}, '${payload}' at ${inc.label}`,
          )
        }
      }
    }
    let forgotten = 0
    for (const { inc, id, payload } of tentative) {
      const agreed = content.get(id)?.payload
      if (agreed === undefined || agreed === payload) continue
      // Different content under this id later: allowed only above what the next incarnation
      // restored of its own messages (those never became durable, so never went out).
      const next = bs[bs.indexOf(inc) + 1]!
      const restoredOwn = restoredOf(next)
        .filter((d) => senderOf(d[0]) === inc.member)
        .map((d) => seqOf(d[0]))
      const durableUpTo = Math.max(0, ...restoredOwn)
      if (seqOf(id) <= durableUpTo) {
        conflicts.push(`${id}: '${payload}' at ${inc.label}, '${agreed}' later (reused seq)`)
      } else forgotten++
    }
    expect.soft(sample(conflicts), `seed ${SEED}: same id, different content`).toEqual([])

    // (5) Each restart restored b's log: something, whenever b had delivered anything, and
    // every own message of b that a or c delivered (it went out only once durable). The
    // replay comes first, and the stats count exactly the replayed messages.
    for (let k = 1; k < bs.length; k++) {
      const before = bs[k - 1]!
      const after = bs[k]!
      const restored = restoredOf(after)
      if (before.deliveries.length > 0) {
        expect
          .soft(restored.length, `seed ${SEED}: ${after.label} restored nothing`)
          .toBeGreaterThan(0)
      }
      const restoredIds = new Set(restored.map((d) => d[0]))
      const sentOut = new Set<string>()
      for (const other of [a, c]) {
        for (const [id, , payload] of other.deliveries) {
          if (senderOf(id) === 'b' && payload !== '' && incarnationOf(payload) < k) sentOut.add(id)
        }
      }
      expect
        .soft(
          sample(difference(sentOut, restoredIds)),
          `seed ${SEED}: own messages of b that a or c delivered, not restored by ${after.label}`,
        )
        .toEqual([])
      expect
        .soft(
          after.deliveries.slice(0, restored.length).every((d) => d[1]),
          `${after.label}: the replay comes before any other delivery`,
        )
        .toBe(true)
      expect
        .soft(readies[k - 1]!.restoredMessages, `${after.label}: restoredMessages`)
        .toBe(restored.length)
    }

    // The run exercised what it claims to: b got messages out, and restarts replayed them.
    const bOwnAtA = bs.map(
      (inc) =>
        [...a.ids].filter((id) =>
          content.get(id)?.payload.startsWith(`${inc.member}.${inc.number}.`),
        ).length,
    )
    expect(
      bOwnAtA.some((n) => n > 0),
      'some message of b reached a',
    ).toBe(true)
    expect(
      bs.slice(1).some((inc) => restoredOf(inc).length > 0),
      'a restart replayed b’s log',
    ).toBe(true)
    console.log(JSON.stringify({ bOwnAtA, forgottenUnsyncedOwnSends: forgotten }))
  })
})
