/**
 * A replicated directory on semantic order, in the simulator with swarm faults (loss,
 * duplication, reordering, partitions, clogs, pauses, crashes and restarts):
 *
 * - insert(key, item) — class 0: adds the item to the key's set (inserts commute);
 * - delete(key, item) — class 1: removes it (deletes commute with each other);
 * - update(key, n)    — class 2: max-assigns the key's register (updates commute).
 *
 * Every replica records a digest of its state at each stable cut it passes — all commands of
 * the waves below `w` applied, none of a later wave (`atWaveBoundary()`, `position().wave`)
 * — and for every `w` all the digests recorded anywhere, by any incarnation, must be equal.
 * After the faults heal, every replica's state must equal the state obtained by applying
 * every command in the key order `(wave, rank, sender, seq, index)`.
 */
import { divider } from '@consul/divider'
import { psync } from '@consul/psync'
import { runScenario, type Scenario, type Simulation } from '@consul/sim'
import {
  type Capability,
  capability,
  type DividerControl,
  defineProtocol,
  type NodeId,
  ORDER,
  type OrderControl,
  type OrderedCommand,
  PSYNC,
  type PsyncControl,
  parseMessageId,
  stack,
} from '@consul/xkernel'
import { describe, expect, it } from 'vitest'
import { semanticOrder } from '../src/index.js'

const INSERT = 0
const DELETE = 1
const UPDATE = 2
const text = new TextEncoder()
const untext = new TextDecoder()

const encode = (op: number, key: string, value: string | number) =>
  Uint8Array.of(op, ...text.encode(`${key}\u0000${value}`))

function decode(command: Uint8Array): { op: number; key: string; value: string } {
  const [key = '', value = ''] = untext.decode(command.subarray(1)).split('\u0000')
  return { op: command[0]!, key, value }
}

const classOf = (command: Uint8Array) => command[0]!

/** A directory replica: key → (set of items, max register). */
class Directory {
  private readonly entries = new Map<string, { items: Set<string>; max: number }>()

  apply(command: Uint8Array): void {
    const { op, key, value } = decode(command)
    let entry = this.entries.get(key)
    if (entry === undefined) this.entries.set(key, (entry = { items: new Set(), max: 0 }))
    if (op === INSERT) entry.items.add(value)
    else if (op === DELETE) entry.items.delete(value)
    else if (op === UPDATE) entry.max = Math.max(entry.max, Number(value))
    else throw new Error(`unknown op ${op}`)
  }

  digest(): string {
    return JSON.stringify(
      [...this.entries.keys()]
        .sort()
        .map((k) => [k, [...this.entries.get(k)!.items].sort(), this.entries.get(k)!.max]),
    )
  }
}

interface Replica {
  readonly node: NodeId
  readonly incarnation: number
  readonly directory: Directory
  readonly order: OrderControl
  readonly applied: OrderedCommand[]
  /** wave → digest at the stable cut below it. */
  readonly cuts: Map<number, string>
}

interface World {
  replicas: Replica[]
  submitted: number
  acknowledged: Set<string>
}

type Caps = {
  psync: PsyncControl
  divider: DividerControl
  order: OrderControl
  directory: Replica
}
const DIRECTORY: Capability<'directory', Replica> = capability<'directory', Replica>('directory')

/** The application: a fresh, empty directory per incarnation, rebuilt from Psync's replay. */
function directoryApp(world: World, incarnation: (node: NodeId) => number) {
  return defineProtocol({
    name: 'directory',
    requires: [ORDER, PSYNC],
    provides: [DIRECTORY],
    create: () => ({
      open(ctx) {
        const order = ctx.get(ORDER)
        const conversation = ctx.get(PSYNC)
        const replica: Replica = {
          node: ctx.self,
          incarnation: incarnation(ctx.self),
          directory: new Directory(),
          order,
          applied: [],
          cuts: new Map(),
        }
        world.replicas.push(replica)
        order.onDeliver((c) => {
          replica.directory.apply(c.command)
          replica.applied.push(c)
        })
        // Registered after the Order's own handlers, so these run once it has delivered
        // what a message or a wave allowed.
        conversation.onDeliver(() => recordCut(replica))
        conversation.onWave(() => recordCut(replica))
        return { controls: { directory: replica } }
      },
    }),
  })
}

function recordCut(replica: Replica): void {
  if (!replica.order.atWaveBoundary()) return
  const { wave } = replica.order.position()
  if (!replica.cuts.has(wave)) replica.cuts.set(wave, replica.directory.digest())
}

/** Key order: (wave, rank, sender, seq, index). */
function keyOrder(a: OrderedCommand, b: OrderedCommand): number {
  const ka = key(a)
  const kb = key(b)
  for (let i = 0; i < ka.length; i++) {
    const x = ka[i]!
    const y = kb[i]!
    if (x !== y) return x < y ? -1 : 1
  }
  return 0
}

function key(c: OrderedCommand): (string | number)[] {
  const message = parseMessageId(c.message)!
  const index = Number(c.id.slice(c.id.lastIndexOf('/') + 1))
  return [c.position.wave, classOf(c.command), message.sender, message.seq, index]
}

async function run(seed: number) {
  const world: World = { replicas: [], submitted: 0, acknowledged: new Set() }
  let sim: Simulation<Caps> | undefined
  const nodes = seed % 5 === 0 ? 5 : 3
  const durationMs = 2_400
  const scenario: Scenario<Caps> = {
    name: 'semantic-directory',
    nodes,
    durationMs,
    faults: 'swarm',
    stack: () =>
      stack()
        .use(psync({ logEveryMs: 2 }))
        .use(divider())
        .use(semanticOrder({ classOf }))
        .use(directoryApp(world, (node) => sim?.incarnation(node) ?? 0)),
    async setup(s) {
      sim = s
      await s.openAll({ port: 'directory' })
    },
    workload(s) {
      const keys = ['a', 'b', 'c', 'd']
      s.every(3, durationMs * 0.6, () => {
        for (const node of s.nodes) {
          if (!s.isUp(node) || s.random.next() < 0.5) continue
          const group = s.host(node).group('directory')
          if (group === undefined) continue
          const k = keys[s.random.int(keys.length)]!
          const draw = s.random.next()
          const command =
            draw < 0.45
              ? encode(INSERT, k, `i${s.random.int(5)}`)
              : draw < 0.75
                ? encode(DELETE, k, `i${s.random.int(5)}`)
                : encode(UPDATE, k, s.random.int(1000))
          world.submitted++
          group
            .get(ORDER)
            .submit(command)
            .then(
              (c) => world.acknowledged.add(c.id),
              () => {},
            )
        }
      })
      // Sample the stable cuts between messages too.
      s.every(1, durationMs, () => {
        for (const r of world.replicas) if (s.isUp(r.node)) recordCut(r)
      })
    },
  }
  const result = await runScenario(scenario, { seed })
  return { result, world, sim: sim! }
}

describe('a replicated directory on semantic order, under swarm faults', () => {
  it('replica states are equal at every stable cut and after the faults heal (30 seeds)', async () => {
    let comparedCuts = 0
    let restartedReplicas = 0
    let early = 0
    for (let seed = 1; seed <= 30; seed++) {
      const { result, world, sim } = await run(seed)
      const at = `seed ${seed} (${result.environment})`
      expect(result.error, at).toBeUndefined()
      // Stable cuts: for each wave, one digest however many replicas and incarnations saw it.
      const byWave = new Map<number, { digests: Map<string, string>; replicas: number }>()
      for (const r of world.replicas) {
        for (const [wave, digest] of r.cuts) {
          let seen = byWave.get(wave)
          if (seen === undefined) byWave.set(wave, (seen = { digests: new Map(), replicas: 0 }))
          seen.digests.set(digest, `${r.node}/${r.incarnation}`)
          seen.replicas++
        }
      }
      for (const [wave, { digests }] of byWave) {
        expect(
          [...digests.values()],
          `${at}: replicas with different states at the cut below wave ${wave}`,
        ).toHaveLength(1)
      }
      comparedCuts += [...byWave.values()].filter((w) => w.replicas > 1).length
      // The last incarnation of every node: the same final state, the key-order state.
      const last = new Map<NodeId, (typeof world.replicas)[number]>()
      for (const r of world.replicas) {
        const before = last.get(r.node)
        if (before === undefined || r.incarnation > before.incarnation) last.set(r.node, r)
      }
      expect(last.size, at).toBe(sim.nodes.length)
      restartedReplicas += world.replicas.length - sim.nodes.length
      const all = new Map<string, OrderedCommand>()
      for (const r of world.replicas) for (const c of r.applied) all.set(c.id, c)
      const reference = new Directory()
      for (const c of [...all.values()].sort(keyOrder)) reference.apply(c.command)
      for (const r of last.values()) {
        expect(r.order.atWaveBoundary(), `${at}: ${r.node} at a wave boundary at the end`).toBe(
          true,
        )
        expect(r.applied.length, `${at}: ${r.node} applied every command`).toBe(all.size)
        expect(r.directory.digest(), `${at}: ${r.node}'s final state`).toBe(reference.digest())
        early += sim.host(r.node).stats()['order-semantic']?.deliveredEarly ?? 0
      }
      for (const id of world.acknowledged) expect(all.has(id), `${at}: ${id} is lost`).toBe(true)
      expect(all.size, at).toBeGreaterThan(100)
    }
    // The checks above had something to bite on.
    expect(comparedCuts).toBeGreaterThan(30 * 100)
    expect(restartedReplicas).toBeGreaterThan(5)
    expect(early).toBeGreaterThan(1_000)
    // 30 seeded runs: ≈ 30 s alone on this machine, twice that beside the other packages' tests.
  }, 180_000)
})
