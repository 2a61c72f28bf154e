/**
 * Real processes: three `consul-tuple-space` replicas on UDP (loopback, group key) and LMDB,
 * started by the cluster launcher, driven by the typed client over TCP. Blocking and wake-up
 * across replicas, exactly-once `in` with many concurrent workers (the work-queue example),
 * bad input on a real server, and a replica killed with SIGKILL while `in`s wait on every
 * replica: excluded, the others go on; restarted, it rejoins with the same state.
 */
import { connect as connectTcp } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runWorkQueue } from '../examples/work-queue.js'
import type { TupleSpace } from '../src/client.js'
import { type Cluster, startCluster } from '../src/cluster.js'
import { formal } from '../src/tuple.js'

let cluster: Cluster
const clients: TupleSpace[] = []
const open = async (name: string) => {
  const c = await cluster.connect(name)
  clients.push(c)
  return c
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
async function until<T>(probe: () => Promise<T | undefined>, what: string, ms = 20_000) {
  const deadline = Date.now() + ms
  for (;;) {
    const v = await probe().catch(() => undefined)
    if (v !== undefined) return v
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms: ${what}`)
    await sleep(50)
  }
}
/** Waits until every running replica has the same state; returns it. */
const equalStates = () =>
  until(async () => {
    const states = Object.values(await cluster.states())
    const digests = new Set(states.map((s) => s.dump?.digest))
    return digests.size === 1 && states.every((s) => s.recovery === 'active')
      ? states[0]!.dump!
      : undefined
  }, 'equal states everywhere')

beforeAll(async () => {
  // Encrypted (AEAD): the whole run, crashes and recovery included, over sealed datagrams.
  cluster = await startCluster({
    replicas: 3,
    suspectAfterMs: 1_500,
    output: 'ignore',
    encrypt: true,
  })
})
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close().catch(() => {})))
  await cluster?.stop()
})

describe('a cluster of replica processes', () => {
  it('an in on replica a waits, and wakes when replica b outs; a rd on c reads the same tuple', async () => {
    const [a, b, c] = [await open('a'), await open('b'), await open('c')]
    let woken = false
    const taking = a.in(['wake', formal.string]).then((t) => {
      woken = true
      return t
    })
    const reading = c.rd(['wake', formal.string])
    await sleep(300)
    expect(woken).toBe(false)
    await b.out(['wake', 'from b'])
    expect(await taking).toEqual(['wake', 'from b'])
    // The rd may have read it before the in took it, or blocks for the next one.
    await b.out(['wake', 'again'])
    expect((await reading)[0]).toBe('wake')
    expect(await a.inp(['wake', 'from b'])).toBeUndefined()
    expect(await c.in(['wake', 'again'])).toEqual(['wake', 'again'])
    await equalStates()
  })

  it('the work queue: 150 tasks, 9 workers on 3 replicas, every task taken once, every result collected once', async () => {
    const report = await runWorkQueue(cluster, { tasks: 150, workersPerReplica: 3 })
    expect(report.results.size).toBe(150)
    expect(Object.values(report.perWorker).reduce((x, y) => x + y, 0)).toBe(150)
    for (const r of ['a', 'b', 'c'])
      expect(
        Object.entries(report.perWorker)
          .filter(([w]) => w.startsWith(r))
          .reduce((x, [, n]) => x + n, 0),
        r,
      ).toBeGreaterThan(0)
    const state = await equalStates()
    expect(state.tuples).toEqual([])
    expect(state.waiters).toEqual([])
  })

  it('bad input on a real server gets error replies, and the connection keeps serving', async () => {
    const socket = connectTcp({ port: cluster.replica('b').tcpPort, host: '127.0.0.1' })
    let text = ''
    socket.on('data', (d: Buffer) => (text += d.toString()))
    await new Promise((r) => socket.once('connect', r))
    socket.write('garbage\n{"id":1,"op":"nope"}\n{"id":2,"op":"in","template":[]}\n\u0000\u00ff\n')
    socket.write('{"id":3,"op":"out","tuple":["bad-input-ok"]}\n')
    await until(async () => (text.split('\n').length > 5 ? true : undefined), 'five replies', 5_000)
    socket.destroy()
    const replies = text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { id: unknown; ok: boolean; error?: { code: string } })
    expect(replies.map((r) => [r.id, r.error?.code ?? 'ok'])).toEqual([
      [null, 'BAD_FRAME'],
      [1, 'UNKNOWN_OP'],
      [2, 'BAD_TEMPLATE'],
      [null, 'BAD_FRAME'],
      [3, 'ok'],
    ])
    const c = await open('c')
    expect(await c.in(['bad-input-ok'])).toEqual(['bad-input-ok'])
  })

  it('SIGKILL of a replica while ins wait on every replica: the others exclude it and hand out every tuple once; restarted, it rejoins with the same state and its old waiters gone', async () => {
    const waiting = await Promise.all(
      ['a', 'a', 'b', 'b', 'c', 'c'].map(async (name) => {
        const ts = await open(name)
        return {
          name,
          result: ts.in(['crash-task', formal.int]).then(
            (t) => ({ ok: true as const, task: t[1] }),
            (e: { code: string }) => ({ ok: false as const, code: e.code }),
          ),
        }
      }),
    )
    await until(
      async () =>
        (await cluster.replica('b').state()).dump?.waiters.length === 6 ? true : undefined,
      'six waiters registered',
    )
    const a = cluster.replica('a')
    const killed = Date.now()
    await a.kill('SIGKILL')
    // a's clients lose their connections: nothing was taken for them.
    for (const w of waiting.filter((w) => w.name === 'a'))
      expect(await w.result).toEqual({ ok: false, code: 'CONNECTION_CLOSED' })
    await until(async () => {
      const v = (await cluster.replica('b').state()).view
      return v !== null && !v.members.includes('a') ? v : undefined
    }, 'b and c to exclude a')
    const excludedMs = Date.now() - killed
    // The group goes on without a: four tasks for the four waiters of b and c.
    const producer = await open('c')
    await Promise.all([0, 1, 2, 3].map((i) => producer.out(['crash-task', i])))
    const served = await Promise.all(waiting.filter((w) => w.name !== 'a').map((w) => w.result))
    expect(served.every((s) => s.ok)).toBe(true)
    expect(served.map((s) => (s as { task: number }).task).sort()).toEqual([0, 1, 2, 3])
    // a's old waiters are still registered (no one claims for them): nothing is waiting to eat.
    const meanwhile = (await cluster.replica('c').state()).dump!
    expect(meanwhile.tuples.filter((t) => (t[4] as unknown[])[0] === 'crash-task')).toEqual([])
    expect(meanwhile.waiters.map((w) => w[0])).toEqual(['a', 'a'])
    // Restarted on its storage: it rejoins, forgets its old session's waiters, and serves.
    const restarting = Date.now()
    await a.start()
    const rejoinMs = Date.now() - restarting
    expect(a.restored).toBe(true)
    const again = await open('a')
    const next = again.in(['crash-task', formal.int])
    await sleep(100)
    await producer.out(['crash-task', 4])
    expect(await next).toEqual(['crash-task', 4])
    const state = await equalStates()
    expect(state.tuples.filter((t) => (t[4] as unknown[])[0] === 'crash-task')).toEqual([])
    expect(state.waiters).toEqual([])
    const view = (await cluster.replica('a').state()).view!
    expect(view.members).toEqual(['a', 'b', 'c'])
    console.log(
      `tuple-space e2e: a excluded ${excludedMs} ms after SIGKILL; restarted and active in ${rejoinMs} ms (configuration ${view.configuration})`,
    )
  })
})
