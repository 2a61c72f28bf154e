/**
 * A real network partition, the strong configuration: three replica processes, each in its
 * own Linux network namespace on a veth to one bridge (fixtures/netns.ts), over real UDP.
 * Taking one node's bridge-side link down cuts it off both ways while it keeps running: the
 * two others install a view without it and keep ordering, the cut-off one finds itself in
 * the minority and refuses submits (`NO_PRIMARY`); when the link comes back it learns it
 * was excluded, and never installs a primary view of its own. Once with the highest-ranked
 * member cut off, once with the coordinator (the lowest-ranked).
 *
 * Known debt, written down here: the cut-off member learns its exclusion only from the
 * decision's Psync messages, so the primary must still hold them when the link comes back.
 * With the fixture's default `retainWaves: 64` the majority prunes them within about a
 * second of load, the cut-off member's requests go unanswered (`requestsUnanswerable`), it
 * holds the majority's new messages forever and stays in view 0, flapping between
 * `minority` and `primary`. SIGSTOP hides this (the datagrams wait in the socket buffer); a
 * real partition does not. So these replicas keep every wave (`retainWaves: 0`).
 *
 * Seen, and not asserted (the README promises no more for 'agreed'): the commands the cut-off
 * member submitted between the cut and its minority (~800 ms of load) stay pending through
 * the partition and resolve `ok` ('agreed') just after the heal, delivered there in view 0,
 * though the cut voided them and the primary never delivers them; until it learns its
 * exclusion (~100 ms after the heal) it hears the others again and goes back to `primary`
 * in view 0 for a moment; and after it learned it, it goes on delivering the primary's
 * stream as a bystander, once in a while with one of its own voided commands mixed in. What
 * is asserted is the Order's rule: a submit that resolved there was delivered there before
 * the exclusion.
 *
 * Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN for `ip netns exec`); elsewhere it is skipped
 * and says why.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createNetwork, type Network, probeNetns, removeLeftovers } from './fixtures/netns.js'

const script = fileURLToPath(new URL('./fixtures/replica.ts', import.meta.url))
// As in processes.e2e.test.ts: generous for a loaded CI machine.
const SUSPECT_AFTER_MS = 400
const VIEW_MARGIN_MS = 2_000
// Every replica has a namespace of its own, so they can all use one port.
const PORT = 7_100
const NODES = ['a', 'b', 'c'] as const
const wall = () => performance.timeOrigin + performance.now()

const probe = probeNetns()
if (!probe.ok) console.warn(`netns.e2e.test.ts skipped: ${probe.reason}`)

type Message = { type: string; [k: string]: unknown }
interface Proc {
  readonly name: string
  readonly child: ChildProcess
  readonly messages: Message[]
}

let net: Network | undefined
const running: Proc[] = []

beforeAll(() => {
  if (!probe.ok) return
  const stale = removeLeftovers()
  if (stale.length > 0) console.log(`removed namespaces left by a crashed run: ${stale.join(' ')}`)
  net = createNetwork(NODES)
})
afterEach(async () => {
  await stopAll()
  for (const node of NODES) net?.heal(node)
})
afterAll(() => net?.destroy())

/** Stops every load and kills every replica, waiting for them to exit (they hold the port). */
async function stopAll(): Promise<void> {
  for (const l of loads.splice(0)) l.stop()
  await Promise.all(
    running.splice(0).map(
      (p) =>
        new Promise<void>((resolve) => {
          if (p.child.exitCode !== null || p.child.signalCode !== null) return resolve()
          p.child.once('exit', () => resolve())
          p.child.kill('SIGKILL')
        }),
    ),
  )
}

/** The three replicas, each in its namespace, bound to its own address there. */
async function trio(network: Network): Promise<Proc[]> {
  const peers = Object.fromEntries(NODES.map((n) => [n, { host: network.address(n), port: PORT }]))
  const keyHex = randomBytes(32).toString('hex')
  const procs = NODES.map((name) => {
    // No pruning: see the file's comment.
    const config = {
      self: name,
      peers,
      keyHex,
      suspectAfterMs: SUSPECT_AFTER_MS,
      retainWaves: 0,
      waitForStart: true,
    }
    // `ip netns exec` execs the command in place: same pid, and the IPC channel's descriptor
    // is inherited, so this is a fork through the namespace.
    const child = spawn(
      'ip',
      [
        'netns',
        'exec',
        network.namespace(name),
        process.execPath,
        '--import',
        'tsx',
        script,
        JSON.stringify({ ...config, host: network.address(name) }),
      ],
      { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] },
    )
    const proc: Proc = { name, child, messages: [] }
    child.on('message', (m) => proc.messages.push(m as Message))
    child.on('error', () => {})
    running.push(proc)
    return proc
  })
  // Loading the modules takes a second or more each on a busy machine: open the group at all
  // three at once, or the first ones see the last as deaf (their messages unacknowledged) and
  // may exclude it right away.
  await until(
    () => procs.every((x) => x.messages.some((m) => m.type === 'loaded')),
    30_000,
    'loaded',
  )
  for (const p of procs) p.child.send({ type: 'start' })
  await until(() => procs.every((x) => x.messages.some((m) => m.type === 'ready')), 10_000, 'ready')
  return procs
}

async function until(
  ok: () => boolean,
  timeoutMs: number,
  what: string,
  why?: () => string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!ok()) {
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${why ? ` (${why()})` : ''}`,
      )
    await new Promise((r) => setTimeout(r, 10))
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const of = (p: Proc, type: string) => p.messages.filter((m) => m.type === type)
const delivered = (p: Proc) => of(p, 'delivered').map((m) => m.text as string)
const views = (p: Proc) =>
  of(p, 'view').map((m) => ({ id: m.id, members: m.members, kind: (m.reason as Message).kind }))
/** What `p` delivered after it installed its first view (for the cut-off one: its exclusion). */
const afterExclusion = (p: Proc) =>
  p.messages
    .slice(p.messages.findIndex((m) => m.type === 'view'))
    .filter((m) => m.type === 'delivered')
    .map((m) => m.text as string)
function count(xs: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {}
  for (const x of xs) out[x] = (out[x] ?? 0) + 1
  return out
}
/** Whom `p`'s Failure Detection suspects now (its last word on them was `suspect`). */
function suspectedNow(p: Proc): string[] {
  const last = new Map<string, string>()
  for (const m of p.messages)
    if (m.type === 'suspect' || m.type === 'alive') last.set(m.member as string, m.type)
  return [...last].filter(([, t]) => t === 'suspect').map(([member]) => member)
}
const states = (p: Proc) => of(p, 'state').map((m) => m.state as string)

let submits = 0
const textOf = new Map<number, string>()
function submit(p: Proc, text: string): number {
  const id = ++submits
  textOf.set(id, text)
  p.child.send({ type: 'submit', id, text })
  return id
}
const settled = (p: Proc, id: number) => of(p, 'submitted').find((m) => m.id === id)

const loads: { stop(): void }[] = []
function load(procs: readonly Proc[], everyMs = 50): { stop(): void } {
  let n = 0
  const timer = setInterval(() => {
    n++
    for (const p of procs) if (p.child.connected) submit(p, `load-${p.name}-${n}`)
  }, everyMs)
  const handle = { stop: () => clearInterval(timer) }
  loads.push(handle)
  return handle
}

/** The trio was not healthy before the cut: not what the test is about, so it starts over. */
class NotHealthy extends Error {}

/**
 * Cuts `victim` off under a light load, holds the partition for five timeouts, heals it and
 * checks both sides (see the file's comment).
 */
async function partition(network: Network, victim: (typeof NODES)[number]): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    marks.length = 0
    const procs = await trio(network)
    try {
      await scenario(network, victim, procs)
      return
    } catch (error) {
      console.log(
        `partition of ${victim}: ${String(error)}; what each replica saw:\n${story(procs)}`,
      )
      if (!(error instanceof NotHealthy) || attempt === 2) throw error
      await stopAll()
    }
  }
}

/** When the test cut and healed the link, for `story`. */
const marks: Message[] = []

/** Every replica's suspicions, views and states, in ms since the trio started, for a failure. */
function story(procs: readonly Proc[]): string {
  const startedAt = Math.min(
    ...procs.map((p) => Number(p.messages.find((m) => m.type === 'ready')?.at ?? wall())),
  )
  return procs
    .map((p) => {
      const events = [...p.messages, ...marks]
        .filter((m) =>
          ['ready', 'suspect', 'alive', 'view', 'state', 'cut', 'heal'].includes(m.type),
        )
        .sort((x, y) => Number(x.at) - Number(y.at))
        .map((m) => {
          const what =
            m.type === 'view'
              ? `view ${m.id} [${(m.members as string[]).join(',')}] ${(m.reason as Message).kind}`
              : m.type === 'state'
                ? `state ${m.state}`
                : m.type === 'suspect'
                  ? `suspect ${m.member} ${JSON.stringify(m.reason)}`
                  : m.type === 'alive'
                    ? `alive ${m.member}`
                    : m.type
          return `${(Number(m.at) - startedAt).toFixed(0)} ${what}`
        })
      return `  ${p.name}: ${events.join('; ') || 'nothing'}`
    })
    .join('\n')
}

async function scenario(
  network: Network,
  victim: (typeof NODES)[number],
  procs: readonly Proc[],
): Promise<void> {
  const cut = procs.find((p) => p.name === victim)!
  const [first, second] = procs.filter((p) => p !== cut) as [Proc, Proc]
  const majority = [first, second]
  const light = load(procs)
  // Before the cut nobody may leave: a view already (a false suspicion on a busy machine) is
  // not what this test is about, so it starts over.
  const healthy = async (ok: () => boolean, what: string) => {
    const early = () => procs.filter((p) => of(p, 'view').length > 0)
    await until(() => ok() || early().length > 0, 20_000, what)
    if (early().length > 0)
      throw new NotHealthy(
        `a view before the cut, at ${early()
          .map((p) => p.name)
          .join(', ')}: starting over`,
      )
  }
  submit(first, 'before')
  await healthy(() => procs.every((p) => delivered(p).includes('before')), 'before')
  await healthy(
    () =>
      majority.every((p) => delivered(p).filter((t) => t.startsWith(`load-${victim}`)).length >= 5),
    'the load',
  )

  // The partition is to be the only failure. A replica that stalled a moment (a busy machine)
  // may have been suspected and cleared since: let that settle. A suspicion that stands
  // would change what follows: start over.
  const unsettled = () =>
    procs.filter(
      (p) =>
        of(p, 'view').length > 0 ||
        suspectedNow(p).length > 0 ||
        (states(p).at(-1) ?? 'primary') !== 'primary',
    )
  await until(() => unsettled().length === 0, 3_000, 'the trio to settle').catch(() => {
    throw new NotHealthy(
      `before the cut, not settled at ${unsettled()
        .map((p) => p.name)
        .join(', ')}: starting over`,
    )
  })
  const startupSuspicions = procs.flatMap((p) => of(p, 'suspect')).length
  const atCut = new Map(procs.map((p) => [p, p.messages.length]))
  const sinceCut = (p: Proc) => p.messages.slice(atCut.get(p))
  const statesSinceCut = (p: Proc) =>
    sinceCut(p)
      .filter((m) => m.type === 'state')
      .map((m) => m.state as string)
  const cutAt = wall()
  marks.push({ type: 'cut', at: cutAt })
  network.cut(victim)
  await until(
    () => majority.every((p) => of(p, 'view').length > 0),
    SUSPECT_AFTER_MS + 10_000,
    `view 1 at ${first.name} and ${second.name}`,
  )
  await until(() => statesSinceCut(cut).includes('minority'), 10_000, `${victim} in the minority`)
  const installedIn = Math.max(...majority.map((p) => Number(of(p, 'view')[0]!.at))) - cutAt
  const minorityIn =
    Number(sinceCut(cut).find((m) => m.type === 'state' && m.state === 'minority')!.at) - cutAt
  for (const p of majority) {
    expect(of(p, 'view')).toHaveLength(1)
    expect(of(p, 'view')[0]).toMatchObject({
      id: 1,
      members: [first.name, second.name],
      joined: [],
      left: [victim],
      state: 'primary',
      reason: { kind: 'failure' },
    })
  }
  expect((of(first, 'view')[0]!.reason as Message).cuts).toEqual(
    (of(second, 'view')[0]!.reason as Message).cuts,
  )
  expect(installedIn).toBeLessThan(SUSPECT_AFTER_MS + VIEW_MARGIN_MS)
  // The cut-off side: no view, and it refuses new commands.
  expect(of(cut, 'view')).toEqual([])
  const minoritySince = cut.messages.findIndex(
    (m, i) => i >= atCut.get(cut)! && m.type === 'state' && m.state === 'minority',
  )
  const refused = submit(cut, 'from-minority')
  await until(() => settled(cut, refused) !== undefined, 10_000, `the submit at ${victim}`)
  expect(settled(cut, refused)).toMatchObject({ ok: false, code: 'NO_PRIMARY' })
  // The majority side keeps ordering.
  const during = submit(first, 'during')
  await until(() => settled(first, during) !== undefined, 10_000, 'the submit of during')
  expect(settled(first, during)).toMatchObject({ ok: true })
  await until(() => majority.every((p) => delivered(p).includes('during')), 10_000, 'during')
  for (const p of majority)
    expect(of(p, 'delivered').find((m) => m.text === 'during')).toMatchObject({ view: 1 })

  // Held for five timeouts in all, then healed.
  await sleep(Math.max(0, cutAt + 5 * SUSPECT_AFTER_MS - wall()))
  const healedSince = cut.messages.length
  // Cut off, it heard nobody: in the minority from then until the heal, no flapping.
  expect(statesSinceCut(cut)).toEqual(['minority'])
  const healAt = wall()
  marks.push({ type: 'heal', at: healAt })
  network.heal(victim)
  await until(
    () => states(cut).includes('excluded'),
    15_000,
    `${victim} to learn it was excluded`,
    () => `its states ${states(cut).join(' → ')}`,
  )
  const excludedIn = Number(of(cut, 'state').find((m) => m.state === 'excluded')!.at) - healAt
  const rejected = submit(cut, 'from-excluded')
  await until(
    () => settled(cut, rejected) !== undefined,
    10_000,
    `the submit at excluded ${victim}`,
  )
  expect(settled(cut, rejected)).toMatchObject({ ok: false, code: 'NO_PRIMARY' })
  light.stop()
  // Settle: whatever the excluded member does next, it must not found a primary of its own.
  await sleep(2 * SUSPECT_AFTER_MS)

  // Every command submitted at the cut-off member while it knew it was in the minority was
  // refused as such.
  const whileMinority = cut.messages
    .slice(minoritySince, healedSince)
    .filter((m) => m.type === 'submitting')
    .map((m) => m.id as number)
  await until(
    () => whileMinority.every((id) => settled(cut, id) !== undefined),
    10_000,
    `the submits at ${victim} during the partition`,
  )
  for (const id of whileMinority)
    expect(settled(cut, id)).toMatchObject({ ok: false, code: 'NO_PRIMARY' })
  const pending = of(cut, 'submitting').filter((m) => settled(cut, m.id as number) === undefined)
  const afterHeal = cut.messages
    .slice(healedSince)
    .filter((m) => m.type === 'submitted')
    .map((m) =>
      !m.ok
        ? String(m.code)
        : delivered(first).includes(textOf.get(m.id as number)!)
          ? 'ok'
          : 'ok, voided by the cut',
    )
  console.log(
    `partition of ${victim}: view 1 at ${first.name} and ${second.name} ${installedIn.toFixed(0)} ms ` +
      `after the cut, ${victim} in the minority after ${minorityIn.toFixed(0)} ms, excluded ` +
      `${excludedIn.toFixed(0)} ms after the heal; ${victim}'s states (ms from the heal) ` +
      `${of(cut, 'state')
        .map((m) => `${m.state}@${(Number(m.at) - healAt).toFixed(0)}`)
        .join(' → ')}; ${whileMinority.length} submits refused while in the minority; ` +
      `settled after the heal: ${JSON.stringify(count(afterHeal))}; ${pending.length} never settled; ` +
      `${afterExclusion(cut).length} commands delivered at ${victim} after its exclusion, ` +
      `${afterExclusion(cut).filter((t) => !delivered(first).includes(t)).length} of them its own ` +
      `that the primary never delivered; ${startupSuspicions} suspicions before the cut, cleared`,
  )

  // No split brain: the majority agrees on its single view, stayed primary, ordered the same.
  for (const p of majority) {
    expect(views(p)).toEqual([{ id: 1, members: [first.name, second.name], kind: 'failure' }])
    expect(statesSinceCut(p)).toEqual([])
  }
  await until(
    () => delivered(first).join() === delivered(second).join(),
    10_000,
    `${first.name} and ${second.name} to agree`,
  )
  // The cut-off member: its only view is the majority's, learned as its exclusion; it never
  // installed a view with itself in it, and stays excluded.
  expect(views(cut)).toEqual([{ id: 1, members: [first.name, second.name], kind: 'excluded' }])
  expect(of(cut, 'view')[0]).toMatchObject({ left: [victim], state: 'excluded' })
  expect(states(cut).at(-1)).toBe('excluded')
  expect(states(cut).filter((s) => s === 'excluded')).toHaveLength(1)
  for (const p of procs) {
    expect(delivered(p)).not.toContain('from-minority')
    expect(delivered(p)).not.toContain('from-excluded')
  }
  // Its deliveries are a prefix of the primary's, up to its first own command above the cut.
  const void_ = of(cut, 'delivered').findIndex(
    (m) => m.from === victim && !delivered(first).includes(m.text as string),
  )
  const agreed = void_ < 0 ? delivered(cut) : delivered(cut).slice(0, void_)
  expect(delivered(first).slice(0, agreed.length)).toEqual(agreed)
  // The Order's rule on exclusion: every submit still pending then rejects (its outcome is
  // unknown here), so one that resolved was delivered here before this member learned it.
  const learnedAt = cut.messages.findIndex((m) => m.type === 'state' && m.state === 'excluded')
  const deliveredAt = (text: string) =>
    cut.messages.findIndex((m) => m.type === 'delivered' && m.text === text)
  for (const m of of(cut, 'submitted').filter((m) => m.ok)) {
    const at = deliveredAt(textOf.get(m.id as number)!)
    expect(at).toBeGreaterThanOrEqual(0)
    expect(at).toBeLessThan(learnedAt)
  }
}

describe('strong configuration, a real network partition across namespaces', () => {
  it.skipIf(!probe.ok)(
    "c's link down: a and b install [a, b] and keep ordering, c is in the minority and refuses submits; after the heal c learns it was excluded, no split brain",
    async () => {
      await partition(net!, 'c')
    },
  )

  it.skipIf(!probe.ok)(
    "a's link down while a is the coordinator: b and c exclude it; after the heal a learns it was excluded",
    async () => {
      await partition(net!, 'a')
    },
  )
})
