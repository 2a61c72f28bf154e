/**
 * The group's traffic encrypted (`--encrypt`: AEAD) and its key rotated without downtime: a
 * real 3-replica cluster reading a keyring file, writes going on throughout, the new key added
 * on every replica (`SIGHUP` re-reads the file), the old one dropped once every replica's
 * peers advertise the new one — no write fails, no view changes (no suspicion), and the
 * replicas end equal.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { afterAll, describe, expect, it } from 'vitest'
import { type Cluster, startCluster } from '../src/cluster.js'

const dir = mkdtempSync(join(tmpdir(), 'consul-directory-keys-'))
const keyFile = join(dir, 'group.keys')
const oldKey = 'a1'.repeat(32)
const newKey = 'b2'.repeat(32)
let cluster: Cluster | undefined
const clients: Redis[] = []

afterAll(async () => {
  for (const c of clients) c.disconnect()
  await cluster?.stop()
  rmSync(dir, { recursive: true, force: true })
})

const client = (port: number) => {
  const c = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1 })
  c.on('error', () => {})
  clients.push(c)
  return c
}

/** `INFO consul` as a record of its fields. */
async function consul(c: Redis): Promise<Record<string, string>> {
  const text = await c.info('consul')
  return Object.fromEntries(
    text
      .split('\r\n')
      .filter((l) => l.includes(':'))
      .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1)]),
  )
}

async function until(what: string, check: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

describe.sequential('encrypted traffic and a key rotation under load', () => {
  it('rotates the keyring with SIGHUP while writes go on: none fails, the view stays, states equal', async () => {
    writeFileSync(keyFile, `0:${oldKey}\n`)
    cluster = await startCluster({
      replicas: 3,
      output: 'ignore',
      encrypt: true,
      keyFile,
      suspectAfterMs: 1_000,
    })
    const replicas = cluster.replicas.map((r) => client(r.port))
    for (const c of replicas)
      expect(await consul(c)).toMatchObject({ transport: 'aead', transport_keys: '0' })
    const views = new Set((await Promise.all(replicas.map(consul))).map((i) => i.view_id))
    expect(views.size).toBe(1)

    // Writes from one client per replica, in a loop, until the rotation is over.
    let writing = true
    const failures: string[] = []
    let acknowledged = 0
    const writers = replicas.map(async (c, i) => {
      for (let n = 0; writing; n++) {
        try {
          await c.set(`k${i}`, String(n))
          acknowledged++
        } catch (error) {
          failures.push(String(error))
        }
      }
    })
    await new Promise((r) => setTimeout(r, 300))

    // 1. The new key everywhere; each replica moves to it towards a peer once the peer has it.
    writeFileSync(keyFile, `0:${oldKey}\n1:${newKey}\n`)
    for (const r of cluster.replicas) r.signal('SIGHUP')
    await until('every replica to hold keys 0 and 1, with no peer behind', async () =>
      (await Promise.all(replicas.map(consul))).every(
        (i) => i.transport_keys === '0,1' && i.transport_peers_behind === '0',
      ),
    )
    await new Promise((r) => setTimeout(r, 300))
    // 2. The old key dropped.
    writeFileSync(keyFile, `1:${newKey}\n`)
    for (const r of cluster.replicas) r.signal('SIGHUP')
    await until('every replica to hold key 1 only', async () =>
      (await Promise.all(replicas.map(consul))).every((i) => i.transport_keys === '1'),
    )
    await new Promise((r) => setTimeout(r, 300))
    writing = false
    await Promise.all(writers)

    expect(failures).toEqual([])
    expect(acknowledged).toBeGreaterThan(30)
    const after = await Promise.all(replicas.map(consul))
    // No suspicion, no exclusion: the view the rotation started in.
    expect(new Set(after.map((i) => i.view_id))).toEqual(views)
    // Every replica applied the same writes (local reads may lag a moment).
    await until('equal digests', async () => {
      const reports = await cluster!.reports()
      return new Set(Object.values(reports).map((r) => r.dump?.digest)).size === 1
    })
    const last = await Promise.all([0, 1, 2].map((i) => replicas[0]!.get(`k${i}`)))
    for (const c of replicas.slice(1))
      await until('the last values everywhere', async () => {
        const seen = await Promise.all([0, 1, 2].map((i) => c.get(`k${i}`)))
        return JSON.stringify(seen) === JSON.stringify(last)
      })
  }, 120_000)
})
