/**
 * Stable storage: durable appends per second with group commit (many 100-byte records
 * written as batches in one event-loop turn, then one `sync()`), and the latency of one
 * record put + `sync()`, on LMDB (`@consul/storage-lmdb`, in a temp dir on the same disk as
 * /tmp) next to the in-memory `MemoryStorage`, and the raw-UDP baseline.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { lmdbStorage } from '@consul/storage-lmdb'
import { MemoryStorage, type StableStorage, type StorageOp } from '@consul/xkernel'
import { rawUdpBaseline } from './raw-udp.js'

const RECORD_BYTES = 100
const RECORDS_PER_BATCH = 10
const BATCHES_PER_SYNC = 1000

const key = (n: number) => `log/${String(n).padStart(12, '0')}`

/** Appends group-committed records for `durationMs`; returns records per second. */
async function appendRate(storage: StableStorage, durationMs: number): Promise<number> {
  const value = new Uint8Array(RECORD_BYTES).fill(0x61)
  let next = 0
  const started = performance.now()
  while (performance.now() - started < durationMs) {
    for (let b = 0; b < BATCHES_PER_SYNC; b++) {
      const ops: StorageOp[] = []
      for (let r = 0; r < RECORDS_PER_BATCH; r++) ops.push({ type: 'put', key: key(next++), value })
      storage.batch(ops)
    }
    await storage.sync()
  }
  return next / ((performance.now() - started) / 1000)
}

/** Latency of one record put + sync, `rounds` times; returns sorted milliseconds. */
async function syncLatencies(storage: StableStorage, rounds: number): Promise<number[]> {
  const value = new Uint8Array(RECORD_BYTES).fill(0x62)
  const samples: number[] = []
  for (let i = 0; i < rounds; i++) {
    const started = performance.now()
    storage.put(key(i), value)
    await storage.sync()
    samples.push(performance.now() - started)
  }
  return samples.sort((a, b) => a - b)
}

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!

export async function benchStorage(): Promise<Record<string, number>> {
  const dir = mkdtempSync(join(tmpdir(), 'consul-bench-storage-'))
  try {
    const lmdb = await lmdbStorage(join(dir, 'append'))
    await appendRate(lmdb, 300) // warm-up
    const before = lmdb.stats()
    const durable = await appendRate(lmdb, 3000)
    const after = lmdb.stats()
    await lmdb.close()

    const single = await lmdbStorage(join(dir, 'latency'))
    await syncLatencies(single, 100) // warm-up
    const latencies = await syncLatencies(single, 2000)
    await single.close()

    const memory = new MemoryStorage()
    await appendRate(memory, 300)
    const inMemory = await appendRate(new MemoryStorage(), 3000)

    const raw = await rawUdpBaseline(64, 1000)
    return {
      durableRecordsPerSecond: Math.round(durable),
      durableMBPerSecond: Math.round((durable * RECORD_BYTES) / 1e4) / 100,
      batchesPerCommit: Math.round(
        (after.batches - before.batches) / (after.commits - before.commits),
      ),
      syncLatencyP50Ms: Math.round(percentile(latencies, 50) * 1000) / 1000,
      syncLatencyP99Ms: Math.round(percentile(latencies, 99) * 1000) / 1000,
      memoryRecordsPerSecond: Math.round(inMemory),
      durableVsMemory: Math.round((durable / inMemory) * 1000) / 1000,
      rawPps64: raw.pps,
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
