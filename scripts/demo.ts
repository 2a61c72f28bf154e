/**
 * `pnpm demo`: the replicated directory as a real cluster. Three `consul-directory` replica
 * processes on loopback (strong stack: Psync, Divider, Failure Detection, Membership, total
 * order, Dispatcher, Recovery, Restart; UDP with HMAC, one LMDB directory each), driven by a
 * Redis client (ioredis). One replica is killed with SIGKILL: the group excludes it and writes
 * go on; it is started again, recovers from its disk, rejoins and catches up; at the end every
 * replica holds the same state and every acknowledged write is there, exactly once.
 */
import { type Cluster, startCluster } from '@consul/directory/cluster'
import { Redis } from 'ioredis'

const started = Date.now()
const t = () => `${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s`
const say = (text: string) => process.stdout.write(`${t()}  ${text}\n`)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

say('starting 3 replicas (a, b, c) as separate processes …')
const cluster: Cluster = await startCluster({ replicas: 3, output: 'ignore', suspectAfterMs: 500 })
const clients = new Map<string, Redis>()
const client = (name: string) => {
  let c = clients.get(name)
  if (c === undefined) {
    c = new Redis({
      port: cluster.replica(name).port,
      host: '127.0.0.1',
      maxRetriesPerRequest: 0,
      retryStrategy: () => 100,
    })
    c.on('error', () => {}) // b's client reconnects while b is down
    clients.set(name, c)
  }
  return c
}
for (const r of cluster.replicas) say(`replica ${r.name}: redis-cli -p ${r.port}`)

async function view(name: string): Promise<string> {
  const info = await client(name).info('consul')
  const id = /view_id:(\S*)/.exec(info)?.[1] ?? '?'
  const members = /view_members:(\S*)/.exec(info)?.[1] ?? '?'
  return `${id} [${members}]`
}

// The load: two writers (on a and c), each a counter of its own and one key per write.
const acked = { a: 0, c: 0 }
/** Answered with an error: CLUSTERDOWN/LOADING (not applied) or UNCERTAIN (maybe applied). */
const uncertain = { a: 0, c: 0 }
const refused: string[] = []
let running = true
const writer = async (name: 'a' | 'c') => {
  const c = client(name)
  while (running) {
    try {
      await c
        .multi()
        .incr(`count:${name}`)
        .set(`last:${name}`, String(acked[name] + 1))
        .exec()
      acked[name]++
    } catch (error) {
      const text = String(error)
      if (/UNCERTAIN/.test(text)) uncertain[name]++
      refused.push(
        text
          .replace(/^ReplyError: /, '')
          .split(';')[0]!
          .trim(),
      )
      await sleep(50)
    }
  }
}

try {
  say(`view at a: ${await view('a')}`)
  say(`${await client('a').set('greeting', 'hello from a')} ← SET greeting at a`)
  say(`${await client('b').get('greeting')} ← GET greeting at b`)
  const writers = [writer('a'), writer('c')]
  await sleep(1500)
  say(
    `load running: ${acked.a + acked.c} transactions acknowledged so far (MULTI INCR SET at a and c)`,
  )

  say('SIGKILL replica b')
  const before = acked.a + acked.c
  await cluster.replica('b').kill('SIGKILL')
  const killedAt = Date.now()
  for (;;) {
    const v = await view('a')
    if (!v.includes('b')) {
      say(`view change after ${Date.now() - killedAt} ms: a sees ${v} (b excluded: failure)`)
      break
    }
    await sleep(50)
  }
  await sleep(1500)
  say(`writes go on without b: ${acked.a + acked.c - before} more acknowledged since the kill`)

  say('starting b again on its own storage …')
  const restartAt = Date.now()
  const back = cluster.replica('b').start()
  let lastState = ''
  for (;;) {
    const done = await Promise.race([back.then(() => true), sleep(100).then(() => false)])
    const info = await client('b')
      .info()
      .catch(() => '')
    const state = /recovery:(\S+)/.exec(info)?.[1] ?? 'starting'
    if (state !== lastState) {
      const loading = /loading:(\d)/.exec(info)?.[1]
      say(`b: ${state}${loading === undefined ? '' : ` (INFO loading:${loading})`}`)
      lastState = state
    }
    if (done) break
  }
  say(`b is active again after ${Date.now() - restartAt} ms; view at b: ${await view('b')}`)
  await sleep(1500)
  running = false
  await Promise.all(writers)

  // Every replica equal: same digest, and each counter equal to what was acknowledged.
  let reports = await cluster.reports()
  for (let i = 0; i < 50; i++) {
    const applied = new Set(Object.values(reports).map((r) => r.dump?.applied))
    if (applied.size === 1) break
    await sleep(100)
    reports = await cluster.reports()
  }
  process.stdout.write('\n')
  for (const name of ['a', 'b', 'c']) {
    const r = reports[name]!
    const [ca, cc] = await client(name).mget('count:a', 'count:c')
    say(
      `replica ${name}: ${r.dump?.applied} commands applied, ${r.dump?.keys} keys, ` +
        `count:a=${ca} count:c=${cc}, digest ${r.dump?.digest.slice(0, 16)}`,
    )
  }
  const digests = new Set(Object.values(reports).map((r) => r.dump?.digest))
  const counts = await Promise.all(['a', 'b', 'c'].map((n) => client(n).mget('count:a', 'count:c')))
  // An UNCERTAIN answer may or may not have been applied; everything acknowledged must be.
  const within = (n: string | null | undefined, name: 'a' | 'c') =>
    Number(n) >= acked[name] && Number(n) <= acked[name] + uncertain[name]
  const exact = counts.every(([x, y]) => within(x, 'a') && within(y, 'c'))
  say(
    `acknowledged: ${acked.a} at a, ${acked.c} at c; answered with an error while the view changed: ${refused.length}` +
      (refused.length > 0 ? ` (${[...new Set(refused)].join(' / ')})` : ''),
  )
  if (digests.size === 1 && exact) {
    say('All replicas are equal, and every acknowledged write is applied exactly once.')
  } else {
    say('REPLICAS DIFFER or an acknowledged write is missing — this is a bug.')
    process.exitCode = 1
  }
} finally {
  running = false
  for (const c of clients.values()) c.disconnect()
  await cluster.stop()
}
