/**
 * Whole groups in the simulator (`@consul/sim`): three hosts of the real stack (Psync, the
 * Divider, Failure Detection, Membership, semantic order, the Dispatcher with the tuple-space
 * machine, Recovery, Restart) on virtual time, each with its `TupleSpaceReplica` — the same
 * waiter logic the server runs. Many workers on every replica take tasks concurrently; every
 * task must be taken by one worker only, and every replica must end in the same state — also
 * with loss and with a replica crashing while its workers wait.
 */

import { recoverReady } from '@consul/restart'
import { dist, Simulation } from '@consul/sim'
import { DISPATCHER, MEMBERSHIP, RECOVERY } from '@consul/xkernel'
import { describe, expect, it } from 'vitest'
import { TupleSpaceError } from '../src/errors.js'
import { type SpaceState, snapshotSpace } from '../src/machine.js'
import { TupleSpaceReplica } from '../src/replica.js'
import { tupleSpaceStack } from '../src/stack.js'
import { formal } from '../src/tuple.js'

const MEMBERS = ['n1', 'n2', 'n3']
const PORT = 'ts'

async function simCluster(seed: number, options: { suspectAfterMs: number; loss?: number }) {
  const sim = new Simulation({
    seed,
    nodes: MEMBERS,
    stack: tupleSpaceStack({
      suspectAfterMs: options.suspectAfterMs,
      checkpointEveryWaves: 8,
      logEveryMs: 1,
    }),
    network: { delay: dist.uniform(0.5, 2), loss: options.loss ?? 0 },
    onRestart: async (host) => {
      void recoverReady(host, [{ port: PORT, members: MEMBERS }]).catch(() => {})
    },
  })
  await sim.start()
  await sim.openAll({ port: PORT })
  const control = (n: string) => {
    if (!sim.isUp(n)) return undefined
    try {
      return sim.host(n).group(PORT)?.get(DISPATCHER)
    } catch {
      return undefined
    }
  }
  const recovery = (n: string) => {
    try {
      return sim.isUp(n) ? sim.host(n).group(PORT)?.get(RECOVERY).state() : undefined
    } catch {
      return undefined
    }
  }
  let sessions = 0
  const replicas = new Map<string, TupleSpaceReplica>()
  const replicaOf = (n: string) => {
    const r = new TupleSpaceReplica({
      dispatcher: () => control(n),
      origin: n,
      session: `${n}-${sessions++}`,
    })
    replicas.set(n, r)
    return r
  }
  for (const n of MEMBERS) replicaOf(n)
  /** The replicas of crashed processes (their workers stop). */
  const dead = new Set<TupleSpaceReplica>()
  /** A crash takes the replica's process with it: its waiter logic dies too. */
  const crash = (n: string) => {
    sim.crash(n)
    const r = replicas.get(n)!
    dead.add(r)
    r.close()
  }
  // The server's supervisor tick: follow the group, retry what it refused.
  sim.every(20, 60_000, () => {
    for (const r of replicas.values()) r.refresh()
  })
  const state = (n: string) => control(n)?.state() as SpaceState | undefined
  const view = (n: string) => sim.host(n).group(PORT)!.get(MEMBERSHIP).view()
  return { sim, replicas, replicaOf, state, recovery, dead, crash, view }
}

type Cluster = Awaited<ReturnType<typeof simCluster>>

/**
 * `workers` workers per replica take `['task', i]` and put `['done', i, worker]`; they stop on
 * `['task', -1]`. Errors (a group unavailable for a moment) are counted and the worker goes on.
 */
function startWorkers(c: Cluster, nodes: string[], workers: number) {
  const taken: { task: number; worker: string }[] = []
  const unknown: string[] = []
  for (const n of nodes)
    for (let w = 0; w < workers; w++) {
      const name = `${n}/w${w}`
      const replica = c.replicas.get(n)!
      c.sim.at(1, async () => {
        for (;;) {
          try {
            const [, i] = (await replica.in(['task', formal.int]).result) as ['task', number]
            if (i < 0) return
            taken.push({ task: i, worker: name })
            await replica.out(['done', i, name])
          } catch (error) {
            if (!TupleSpaceError.isInstance(error)) throw error
            if (c.dead.has(replica)) return
            unknown.push(`${name}: ${error.code}`)
            if (error.code === 'RECOVERING') await new Promise((r) => c.sim.after(10, () => r(0)))
          }
        }
      })
    }
  return { taken, unknown }
}

function expectEqualStates(c: Cluster, nodes: string[]) {
  const snaps = nodes.map((n) => snapshotSpace(c.state(n)!))
  for (let i = 1; i < snaps.length; i++) expect(snaps[i], nodes[i]).toEqual(snaps[0])
  return snaps[0]!
}

describe('in the simulator', () => {
  it.each([1, 2, 3])(
    'seed %i: 9 workers on 3 replicas, 60 tasks out from every replica: each taken once, results collected once, states equal',
    async (seed) => {
      const c = await simCluster(seed, { suspectAfterMs: 2_000, loss: seed === 3 ? 0.05 : 0 })
      const { taken, unknown } = startWorkers(c, MEMBERS, 3)
      const collected: number[] = []
      c.sim.at(20, async () => {
        // Every replica outs a third of the tasks, concurrently.
        await Promise.all(
          Array.from({ length: 60 }, (_, i) => c.replicas.get(MEMBERS[i % 3]!)!.out(['task', i])),
        )
      })
      c.sim.at(25, async () => {
        const collector = c.replicas.get('n2')!
        for (let k = 0; k < 60; k++) {
          const [, i] = (await collector.in(['done', formal.int, formal.string]).result) as [
            string,
            number,
          ]
          collected.push(i)
        }
        // Probes on the way: nothing left to take, nothing to read.
        expect(await collector.inp(['task', formal.int]).result).toBeUndefined()
        expect(await collector.rdp(['done', formal.any, formal.any]).result).toBeUndefined()
        await Promise.all(Array.from({ length: 9 }, () => c.replicas.get('n1')!.out(['task', -1])))
      })
      await c.sim.run({ until: 6_000 })
      expect(unknown).toEqual([])
      expect(taken.map((t) => t.task).sort((a, b) => a - b)).toEqual([...Array(60).keys()])
      expect(collected.sort((a, b) => a - b)).toEqual([...Array(60).keys()])
      // Work was spread over the replicas' workers; outs went early; waiters were claimed.
      expect(new Set(taken.map((t) => t.worker.slice(0, 2))).size).toBeGreaterThan(1)
      for (const n of MEMBERS)
        expect(c.sim.host(n).stats()['order-semantic']!.deliveredEarly).toBeGreaterThan(0)
      expect(
        MEMBERS.reduce((sum, n) => sum + c.replicas.get(n)!.stats().claimsSubmitted, 0),
      ).toBeGreaterThan(0)
      const snap = expectEqualStates(c, MEMBERS)
      expect(snap.entries).toEqual([])
      expect(snap.waiters).toEqual([])
    },
  )

  it('a replica crashes while its workers wait and comes back before it is excluded: the others’ waiters get every task once; its old waiters are forgotten; states equal', async () => {
    const c = await simCluster(4, { suspectAfterMs: 5_000 })
    const { taken, unknown } = startWorkers(c, MEMBERS, 2)
    await c.sim.run({ until: 100 })
    expect(c.state('n1')!.waiters.size).toBe(6)
    c.crash('n3')
    c.sim.at(120, async () => {
      await Promise.all(
        Array.from({ length: 20 }, (_, i) => c.replicas.get('n1')!.out(['task', i])),
      )
    })
    c.sim.at(400, async () => {
      await c.sim.restart('n3')
    })
    // The restarted replica: a new session, once active it forgets the old one's waiters.
    let restarted: TupleSpaceReplica | undefined
    c.sim.every(10, 3_000, () => {
      if (restarted === undefined && c.recovery('n3') === 'active' && c.sim.now > 400) {
        restarted = c.replicaOf('n3')
        restarted.forgetEarlierSessions()
      }
    })
    await c.sim.run({ until: 3_000 })
    expect(restarted).toBeDefined()
    expect(c.view('n1')).toMatchObject({ id: 0, configuration: 0 }) // never excluded
    expect(unknown).toEqual([])
    const byTask = taken.map((t) => t.task).sort((a, b) => a - b)
    expect(byTask).toEqual([...Array(20).keys()])
    // n3's crashed workers took nothing.
    expect(taken.filter((t) => t.worker.startsWith('n3')).length).toBe(0)
    const snap = expectEqualStates(c, MEMBERS)
    // Left: 20 results, and the 4 waiting workers of n1 and n2 (n3's old ones forgotten).
    expect(snap.entries).toHaveLength(20)
    expect(snap.waiters.map((w) => w[0]).sort()).toEqual(['n1', 'n1', 'n2', 'n2'])
  })

  it('a replica crashes, is excluded, work goes on without it, and it rejoins: no task is taken twice, states equal', async () => {
    const c = await simCluster(5, { suspectAfterMs: 300 })
    const { taken, unknown } = startWorkers(c, MEMBERS, 2)
    await c.sim.run({ until: 100 })
    c.crash('n3')
    c.sim.at(150, async () => {
      await Promise.all(
        Array.from({ length: 30 }, (_, i) => c.replicas.get('n1')!.out(['task', i])),
      )
    })
    c.sim.at(1_500, async () => {
      await c.sim.restart('n3')
    })
    let restarted: TupleSpaceReplica | undefined
    c.sim.every(10, 6_000, () => {
      if (restarted === undefined && c.recovery('n3') === 'active' && c.sim.now > 1_500) {
        restarted = c.replicaOf('n3')
        restarted.forgetEarlierSessions()
      }
    })
    await c.sim.run({ until: 1_400 })
    expect(c.view('n1').members).toEqual(['n1', 'n2'])
    // Excluded, the survivors went on: every task was taken while n3 was down.
    expect(taken.map((t) => t.task).sort((a, b) => a - b)).toEqual([...Array(30).keys()])
    await c.sim.run({ until: 6_000 })
    expect(restarted).toBeDefined()
    expect(unknown).toEqual([])
    expect(taken).toHaveLength(30)
    // Taken back into the group: a new configuration with all three.
    expect(c.view('n1').members).toEqual(MEMBERS)
    expect(c.view('n1').configuration).toBeGreaterThan(0)
    const snap = expectEqualStates(c, MEMBERS)
    expect(snap.entries).toHaveLength(30)
    expect(snap.waiters.map((w) => w[0]).sort()).toEqual(['n1', 'n1', 'n2', 'n2'])
  })
})
