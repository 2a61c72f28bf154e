/**
 * Crash test with real processes: a writer (fixtures/crash-writer.ts) appends numbered
 * multi-key batches and reports each batch whose sync() resolved; we SIGKILL it at random
 * moments, many times, and after every kill check the store as the next process finds it:
 * every batch a resolved sync covered is there, no batch is partly there, batches form a
 * gap-free prefix 0..max, and the writer resumes after the highest complete batch.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { seededRandom } from '@consul/xkernel'
import { afterAll, describe, expect, it } from 'vitest'
import { lmdbStorage } from '../src/index.js'
import { BATCH_PARTS, batchValue } from './fixtures/crash-batches.js'
import { exited, lines, removeTempDirs, str, tempDir } from './helpers.js'

const writer = fileURLToPath(new URL('./fixtures/crash-writer.ts', import.meta.url))
const packageDir = fileURLToPath(new URL('..', import.meta.url))
const KILLS = 20
const SEED = 20250611

afterAll(removeTempDirs)

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

interface Found {
  /** Highest batch number present (-1 for none). */
  readonly max: number
}

/** Opens the store as a restarted process would, checks every invariant, closes it. */
async function check(
  dir: string,
  syncedMax: number,
  checkedMax: number,
  label: string,
): Promise<Found> {
  const storage = await lmdbStorage(dir)
  try {
    // Plain loops and one expect per invariant: the store grows to tens of thousands of batches.
    const parts = new Map<number, string>()
    const wrongValues: string[] = []
    for (const { key, value } of storage.scan({ prefix: 'n/' })) {
      const [, number, part] = key.split('/')
      const n = Number(number)
      // Each value is exactly what batch n wrote (its checksum passed, and it is the right one);
      // compared in full for batches the previous checks have not seen yet.
      if (n > checkedMax && Buffer.compare(value, batchValue(n, part!)) !== 0) wrongValues.push(key)
      parts.set(n, (parts.get(n) ?? '') + part)
    }
    expect(wrongValues, `${label}: values not as written`).toEqual([])
    const numbers = [...parts.keys()]
    const max = numbers.length === 0 ? -1 : Math.max(...numbers)
    // All or nothing per batch, and no gaps: commits land in order, so what survives is a prefix.
    const partial = [...parts].filter(([, found]) => found !== BATCH_PARTS.join(''))
    expect(partial, `${label}: batches partly there`).toEqual([])
    expect(numbers.length, `${label}: batches 0..${max} without gaps`).toBe(max + 1)
    // Durability: everything a resolved sync() covered survived the kill.
    expect(max, `${label}: synced batch ${syncedMax} lost`).toBeGreaterThanOrEqual(syncedMax)
    // The single-key records of the same batches agree (puts and a delete, atomically).
    const last = str(storage.get('last'))
    expect(last, `${label}: last`).toBe(max === -1 ? undefined : String(max))
    const flags = [...storage.scan({ prefix: 'flag/' })].map((e) => [e.key, str(e.value)])
    expect(flags, `${label}: flags`).toEqual(max === -1 ? [] : [[`flag/${max % 2}`, String(max)]])
    return { max }
  } finally {
    await storage.close()
  }
}

describe('crash safety with real processes (SIGKILL)', () => {
  it(`keeps every synced batch and never a partial one across ${KILLS} kills`, async () => {
    const dir = tempDir('crash')
    const random = seededRandom(SEED)
    let syncedMax = -1
    let previousMax = -1
    let killsAfterProgress = 0
    for (let round = 0; round < KILLS; round++) {
      const label = `seed ${SEED} round ${round}`
      const child: ChildProcess = spawn(
        process.execPath,
        ['--import', 'tsx', writer, dir, String(SEED + round)],
        { cwd: packageDir, stdio: ['ignore', 'pipe', 'inherit'] },
      )
      const output = lines(child)
      const reader = (async () => {
        let resumed: number | undefined
        for await (const line of output) {
          const [word, number] = line.split(' ')
          if (word === 'resumed') resumed = Number(number)
          else if (word === 'synced') syncedMax = Math.max(syncedMax, Number(number))
        }
        return resumed
      })()
      // Every fifth kill lands early (while opening or recovering); the others while it writes.
      if (round % 5 === 4) {
        await sleep(random.int(400))
      } else {
        while (syncedMax <= previousMax && child.exitCode === null) await sleep(5)
        killsAfterProgress++
        await sleep(random.int(250))
      }
      child.kill('SIGKILL')
      await exited(child)
      const resumed = await reader
      expect(child.signalCode, `${label}: the writer died of the kill, not on its own`).toBe(
        'SIGKILL',
      )
      // The writer resumed right after the highest complete batch the last check found.
      if (resumed !== undefined) expect(resumed, `${label}: resumed at`).toBe(previousMax + 1)
      const found = await check(dir, syncedMax, previousMax, label)
      expect(found.max, `${label}: a batch seen before is gone`).toBeGreaterThanOrEqual(previousMax)
      previousMax = found.max
    }
    expect(killsAfterProgress).toBe(KILLS - KILLS / 5)
    expect(syncedMax).toBeGreaterThan(0)
    // Each kill starts a fresh child (tsx start-up included): allow for a loaded CI machine.
  }, 180_000)
})
