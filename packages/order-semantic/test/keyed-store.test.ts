/**
 * A replicated key-value store on the key mode of semantic order (`keysOf`), in the simulator
 * with swarm faults (loss, duplication, reordering, partitions, clogs, pauses, crashes and
 * restarts):
 *
 * - `append(k, s)` — writes k (appends: order-sensitive, so a swapped conflicting pair shows);
 * - `get(k)` — reads k (the value it saw is recorded: equal at every replica that applied it);
 * - `mappend(k1, k2, s)` — writes both keys; `flush` — touches everything ('all').
 *
 * Every replica records a digest of its state at each stable cut it passes, and for every
 * wave all the digests recorded anywhere, by any incarnation, must be equal; every `get`
 * saw the same value wherever it was applied; after the faults heal every replica's state is
 * the state of applying every command in the key order `(wave, sender, seq, index)`.
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
import { type CommandKeys, semanticOrder } from '../src/index.js'

const APPEND = 0
const GET = 1
const MAPPEND = 2
const FLUSH = 3
const text = new TextEncoder()
const untext = new TextDecoder()

const encode = (op: number, k1: string, k2: string, value: string) =>
  Uint8Array.of(op, ...text.encode(`${k1}\u0000${k2}\u0000${value}`))

function decode(command: Uint8Array): { op: number; k1: string; k2: string; value: string } {
  const [k1 = '', k2 = '', value = ''] = untext.decode(command.subarray(1)).split('\u0000')
  return { op: command[0]!, k1, k2, value }
}

function keysOf(command: Uint8Array): CommandKeys {
  const { op, k1, k2 } = decode(command)
  if (op === APPEND) return { keys: [k1], write: true }
  if (op === GET) return { keys: [k1], write: false }
  if (op === MAPPEND) return { keys: [k1, k2], write: true }
  return 'all'
}

/** A key-value replica: key → string; `seen` — what each get returned. */
class Store {
  private readonly entries = new Map<string, string>()

  apply(command: Uint8Array): string | undefined {
    const { op, k1, k2, value } = decode(command)
    if (op === APPEND) this.entries.set(k1, (this.entries.get(k1) ?? '') + value)
    else if (op === MAPPEND) {
      this.entries.set(k1, (this.entries.get(k1) ?? '') + value)
      this.entries.set(k2, (this.entries.get(k2) ?? '') + value)
    } else if (op === GET) return this.entries.get(k1) ?? ''
    else if (op === FLUSH) this.entries.clear()
    else throw new Error(`unknown op ${op}`)
    return undefined
  }

  digest(): string {
    return JSON.stringify([...this.entries].sort(([a], [b]) => (a < b ? -1 : 1)))
  }
}

interface Replica {
  readonly node: NodeId
  readonly incarnation: number
  readonly directory: Store
  /** command id → what a get saw. */
  readonly seen: Map<string, string>
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
          directory: new Store(),
          seen: new Map(),
          order,
          applied: [],
          cuts: new Map(),
        }
        world.replicas.push(replica)
        order.onDeliver((c) => {
          const saw = replica.directory.apply(c.command)
          if (saw !== undefined) replica.seen.set(c.id, saw)
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

/** Key order: (wave, sender, seq, index). */
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
  return [c.position.wave, message.sender, message.seq, index]
}

async function run(seed: number) {
  const world: World = { replicas: [], submitted: 0, acknowledged: new Set() }
  let sim: Simulation<Caps> | undefined
  const nodes = seed % 5 === 0 ? 5 : 3
  const durationMs = 2_400
  const scenario: Scenario<Caps> = {
    name: 'keyed-store',
    nodes,
    durationMs,
    faults: 'swarm',
    stack: () =>
      stack()
        .use(psync({ logEveryMs: 2 }))
        .use(divider())
        .use(semanticOrder({ keysOf }))
        .use(directoryApp(world, (node) => sim?.incarnation(node) ?? 0)),
    async setup(s) {
      sim = s
      await s.openAll({ port: 'directory' })
    },
    workload(s) {
      const keys = ['a', 'b', 'c', 'd', 'e', 'f']
      s.every(3, durationMs * 0.6, () => {
        for (const node of s.nodes) {
          if (!s.isUp(node) || s.random.next() < 0.5) continue
          const group = s.host(node).group('directory')
          if (group === undefined) continue
          const k1 = keys[s.random.int(keys.length)]!
          const k2 = keys[s.random.int(keys.length)]!
          const draw = s.random.next()
          const value = `${node}${world.submitted % 100};`
          const command =
            draw < 0.5
              ? encode(APPEND, k1, '', value)
              : draw < 0.85
                ? encode(GET, k1, '', '')
                : draw < 0.99
                  ? encode(MAPPEND, k1, k2, value)
                  : encode(FLUSH, '', '', '')
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

describe('a replicated key-value store on the key mode, under swarm faults', () => {
  it('replica states are equal at every stable cut and after the faults heal (20 seeds)', async () => {
    let comparedCuts = 0
    let restartedReplicas = 0
    let early = 0
    let gets = 0
    for (let seed = 1; seed <= 20; seed++) {
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
      const reference = new Store()
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
      // Every get saw the same value wherever it was applied, and the key-order value.
      const referenceSeen = new Store()
      const saw = new Map<string, string>()
      for (const c of [...all.values()].sort(keyOrder)) {
        const v = referenceSeen.apply(c.command)
        if (v !== undefined) saw.set(c.id, v)
      }
      for (const r of world.replicas)
        for (const [id, v] of r.seen) {
          expect(v, `${at}: ${id} at ${r.node}/${r.incarnation}`).toBe(saw.get(id))
          gets++
        }
      expect(all.size, at).toBeGreaterThan(100)
    }
    // The checks above had something to bite on.
    expect(comparedCuts).toBeGreaterThan(20 * 100)
    expect(restartedReplicas).toBeGreaterThan(3)
    expect(early).toBeGreaterThan(1_000)
    expect(gets).toBeGreaterThan(1_000)
  }, 180_000)
})
