/**
 * Real clients against a real 3-replica cluster (separate processes, UDP + LMDB): ioredis,
 * node-redis and redis-cli (Debian's redis-tools; the test setup installs it when missing).
 */
import { execFile } from 'node:child_process'
import { mkdirSync, rmSync } from 'node:fs'
import { promisify } from 'node:util'
import { Redis } from 'ioredis'
import { createClient } from 'redis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Cluster, startCluster } from '../src/cluster.js'
import { ensureRedisCli } from './support/redis-tools.js'

const run = promisify(execFile)
let cluster: Cluster
const clients: Array<{ quit(): Promise<unknown> }> = []

const ioredis = (port: number, options: Record<string, unknown> = {}) => {
  const c = new Redis({
    port,
    host: '127.0.0.1',
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    retryStrategy: () => 200,
    ...options,
  })
  c.on('error', () => {}) // reconnects to a killed replica fail until it is back
  clients.push(c)
  return c
}

/** Polls `read` until it returns `expected` (local reads at another replica may lag a moment). */
async function eventually<T>(read: () => Promise<T>, expected: T, ms = 5_000): Promise<void> {
  const until = Date.now() + ms
  for (;;) {
    const value = await read()
    try {
      expect(value).toEqual(expected)
      return
    } catch (error) {
      if (Date.now() > until) throw error
    }
    await new Promise((r) => setTimeout(r, 20))
  }
}

beforeAll(async () => {
  await ensureRedisCli()
  cluster = await startCluster({
    replicas: 3,
    // DIRECTORY_TEST_LOG=info (or debug): the replicas' output, at that level, on this process's.
    output: process.env.DIRECTORY_TEST_LOG ? 'inherit' : 'ignore',
    ...(process.env.DIRECTORY_TEST_LOG
      ? { logLevel: process.env.DIRECTORY_TEST_LOG as 'debug' | 'info' | 'warn' | 'error' }
      : {}),
    suspectAfterMs: 600,
    writeTimeoutMs: 3_000,
  })
}, 120_000)

afterAll(async () => {
  await Promise.all(clients.map((c) => c.quit().catch(() => {})))
  await cluster?.stop()
})

describe.sequential('real clients against a 3-replica cluster', () => {
  it('ioredis: strings, hashes, expiry, a pipeline and MULTI/EXEC; the other replicas agree', async () => {
    const [a, b] = cluster.replicas.map((r) => ioredis(r.port))
    await a!.connect()
    await b!.connect()
    expect(await a!.set('greeting', 'hello')).toBe('OK')
    expect(await a!.get('greeting')).toBe('hello')
    expect(await a!.incrby('counter', 5)).toBe(5)
    expect(await a!.hset('user:1', 'name', 'ada', 'lang', 'en')).toBe(2)
    expect(await a!.hgetall('user:1')).toEqual({ name: 'ada', lang: 'en' })
    expect(await a!.set('temp', 'x', 'PX', 60_000)).toBe('OK')
    expect(await a!.pttl('temp')).toBeGreaterThan(50_000)
    await expect(a!.incr('greeting')).rejects.toThrow('ERR value is not an integer or out of range')
    const pipeline = a!.pipeline()
    for (let i = 0; i < 200; i++) pipeline.incr('piped')
    pipeline.get('piped')
    const results = await pipeline.exec()
    expect(results!.map(([error]) => error)).toEqual(new Array(201).fill(null))
    expect(results!.map(([, v]) => v).slice(0, 3)).toEqual([1, 2, 3])
    expect(results![200]![1]).toBe('200')
    const tx = await a!.multi().set('t', '1').incr('t').get('t').exec()
    expect(tx).toEqual([
      [null, 'OK'],
      [null, 2],
      [null, '2'],
    ])
    await eventually(() => b!.mget('greeting', 'counter', 'piped', 't'), ['hello', '5', '200', '2'])
    expect(await b!.hget('user:1', 'name')).toBe('ada')
  })

  it('node-redis: RESP2 and RESP3 (HELLO 3), a transaction, CLIENT SETNAME', async () => {
    const port = cluster.replicas[1]!.port
    const two = createClient({ socket: { port, host: '127.0.0.1' }, name: 'nr2' })
    two.on('error', () => {})
    clients.push({ quit: () => two.close() })
    await two.connect()
    expect(await two.set('nr', 'v1')).toBe('OK')
    expect(await two.get('nr')).toBe('v1')
    expect(await two.clientGetName()).toBe('nr2')
    expect(await two.multi().incr('nr:n').incr('nr:n').exec()).toEqual([1, 2])
    const three = createClient({ socket: { port, host: '127.0.0.1' }, RESP: 3 })
    three.on('error', () => {})
    clients.push({ quit: () => three.close() })
    await three.connect()
    expect(await three.hSet('nr:h', { a: '1', b: '2' })).toBe(2)
    const h = await three.hGetAll('nr:h')
    expect({ ...h }).toEqual({ a: '1', b: '2' })
    expect(await three.get('missing')).toBeNull()
    await expect(three.sendCommand(['NOSUCH'])).rejects.toThrow(/unknown command 'NOSUCH'/)
  })

  it('redis-cli: one-shot commands, RESP3, inline pipes and INFO', async () => {
    const port = String(cluster.replicas[2]!.port)
    const cli = async (...args: string[]) =>
      (await run('redis-cli', ['-p', port, ...args])).stdout.trim()
    expect(await cli('SET', 'k', 'v')).toBe('OK')
    expect(await cli('GET', 'k')).toBe('v')
    expect(await cli('-3', 'HSET', 'h', 'f', '1')).toBe('1')
    expect(await cli('DBSIZE')).toMatch(/^\d+$/)
    expect(await cli('PING')).toBe('PONG')
    expect(await cli('INFO', 'consul')).toMatch(/recovery:active/)
    expect(await cli('FOO')).toMatch(/ERR unknown command 'FOO'/)
    const piped = promisify(execFile)
    const child = piped('redis-cli', ['-p', port])
    child.child.stdin!.end('SET p 1\nINCR p\nGET p\n')
    expect((await child).stdout.trim().split('\n')).toEqual(['OK', '2', '2'])
  })

  it('a replica killed with SIGKILL comes back with the right state; writes go on meanwhile', async () => {
    const [a, , c] = cluster.replicas.map((r) => ioredis(r.port))
    await a!.connect()
    await c!.connect()
    for (let i = 0; i < 50; i++) await a!.incr('survive')
    await cluster.replica('b').kill()
    // Writes continue once the group has excluded b (after the suspicion timeout).
    for (let i = 0; i < 50; i++) {
      for (;;) {
        try {
          await a!.incr('survive')
          break
        } catch (error) {
          expect(String(error)).toMatch(/CLUSTERDOWN|LOADING|UNCERTAIN/)
          await new Promise((r) => setTimeout(r, 50))
        }
      }
    }
    await cluster.replica('b').start()
    const b = ioredis(cluster.replica('b').port)
    await b.connect()
    await eventually(() => b.get('survive'), '100', 20_000)
    const reports = await cluster.reports()
    await eventually(
      async () => {
        const r = await cluster.reports()
        return new Set(Object.values(r).map((x) => x.dump?.digest)).size
      },
      1,
      10_000,
    )
    expect(Object.keys(reports).sort()).toEqual(['a', 'b', 'c'])
  })

  it('a minority replica refuses writes with CLUSTERDOWN and loses nothing', async () => {
    const a = ioredis(cluster.replica('a').port)
    await a.connect()
    expect(await a.set('before', 'x')).toBe('OK')
    await cluster.replica('b').kill()
    await cluster.replica('c').kill()
    let refused: unknown
    const until = Date.now() + 15_000
    while (refused === undefined && Date.now() < until) {
      try {
        await a.set('during', 'y')
      } catch (error) {
        if (/CLUSTERDOWN/.test(String(error))) refused = error
      }
      await new Promise((r) => setTimeout(r, 50))
    }
    expect(String(refused)).toMatch(/CLUSTERDOWN .*minority.*not applied/)
    // The write sent before a knew it was alone was answered 'outcome unknown' (timed out).
    expect(await a.info('consul')).toMatch(/timed_out:[1-9]/)
    // Reads are still served locally (documented: possibly stale).
    expect(await a.get('before')).toBe('x')
    await Promise.all([cluster.replica('b').start(), cluster.replica('c').start()])
    await eventually(
      async () => {
        try {
          return await a.set('after', 'z')
        } catch {
          return 'refused'
        }
      },
      'OK',
      30_000,
    )
    const c = ioredis(cluster.replica('c').port)
    await c.connect()
    await eventually(() => c.mget('before', 'after', 'survive'), ['x', 'z', '100'], 10_000)
  }, 120_000)

  // The wiped replica is started again within the suspicion timeout, so the others may still
  // have it in their view: it must not be let into the configuration it lost its messages of
  // (that stalled the join, fresh and old chains colliding), but excluded and taken in anew.
  it('a replica whose data was wiped joins again and fetches the state; it never serves an empty one', async () => {
    const b = cluster.replica('b')
    await b.kill()
    rmSync(b.dataDir, { recursive: true, force: true })
    mkdirSync(b.dataDir)
    await b.start({ wait: 'listening' })
    const probe = ioredis(b.port)
    await probe.connect()
    // Until it is back in the group with the state, reads are refused, never answered empty.
    let seen: unknown
    const until = Date.now() + 60_000
    while (Date.now() < until) {
      try {
        seen = await probe.get('survive')
        break
      } catch (error) {
        expect(String(error)).toMatch(/LOADING/)
        await new Promise((r) => setTimeout(r, 50))
      }
    }
    expect(seen).toBe('100')
    expect(await probe.info('consul')).toMatch(/view_members:(a,b,c|[abc,]*b[abc,]*)/)
  }, 120_000)
})

describe('a wiped replica back before the others excluded it', () => {
  it('is not let into the configuration it lost its messages of: suspected, excluded, it joins anew and fetches the state — never serving an empty one', async () => {
    // A suspicion timeout far longer than the replica's restart: the others still have it in
    // their view when it asks to join.
    const slow = await startCluster({ replicas: 3, output: 'ignore', suspectAfterMs: 30_000 })
    try {
      const a = ioredis(slow.replica('a').port)
      await a.connect()
      for (let i = 0; i < 20; i++) await a.incr('kept')
      const b = slow.replica('b')
      const killed = Date.now()
      await b.kill()
      rmSync(b.dataDir, { recursive: true, force: true })
      mkdirSync(b.dataDir)
      const started = Date.now()
      await b.start({ wait: 'listening' })
      const probe = ioredis(b.port, { enableReadyCheck: false })
      let seen: unknown
      while (Date.now() - started < 60_000) {
        try {
          seen = await probe.get('kept')
          break
        } catch (error) {
          expect(String(error)).toMatch(/LOADING/)
          await new Promise((r) => setTimeout(r, 50))
        }
      }
      expect(seen).toBe('20')
      // Before the suspicion timeout could have excluded it: its ask was what did.
      expect(Date.now() - killed).toBeLessThan(30_000)
      expect(await probe.info('consul')).toMatch(/recovery:active/)
    } finally {
      await slow.stop()
    }
  }, 120_000)
})
