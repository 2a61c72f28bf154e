/** The weak stack as real processes: no agreement package — writes go on once a crashed replica is suspected; it cannot come back. */
import { Redis } from 'ioredis'
import { afterAll, expect, it } from 'vitest'
import { type Cluster, startCluster } from '../src/cluster.js'

let cluster: Cluster | undefined
const clients: Redis[] = []
afterAll(async () => {
  for (const c of clients) c.disconnect()
  await cluster?.stop()
})

it('weak stack: replicates, masks out a killed replica, and refuses to bring it back without a state', async () => {
  cluster = await startCluster({
    replicas: 3,
    stack: 'weak',
    output: 'ignore',
    suspectAfterMs: 500,
  })
  const [a, b, c] = cluster.replicas.map((r) => {
    const client = new Redis({
      port: r.port,
      host: '127.0.0.1',
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    })
    client.on('error', () => {})
    clients.push(client)
    return client
  })
  for (let i = 0; i < 20; i++) await a!.incr('n')
  expect(await a!.info('consul')).toMatch(/stack:weak/)
  await cluster.replica('b').kill()
  // Without Membership nobody excludes b: each replica masks it out once it suspects it.
  for (let i = 0; i < 20; i++) await c!.incr('n')
  expect(await a!.get('n')).toBe('40')
  await expect(cluster.replica('b').start()).rejects.toThrow(/the weak stack keeps no checkpoints/)
  expect(b!.status).not.toBe('ready')
}, 90_000)
