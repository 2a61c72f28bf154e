/**
 * A work queue in the style of the paper's Linda prototypes: a producer `out`s tasks, workers
 * on every replica `in` them and `out` their results, and the producer collects every result
 * exactly once. Poison pills (`['task', -1, 0]`) stop the workers.
 *
 *   pnpm --filter @consul/tuple-space example:work-queue        # 3 replicas, 200 tasks
 *   TASKS=1000 WORKERS=4 pnpm --filter @consul/tuple-space example:work-queue
 *
 * `runWorkQueue` is also what the real-process test runs (`test/cluster.e2e.test.ts`).
 */
import { fileURLToPath } from 'node:url'
import type { Cluster } from '../src/cluster.js'
import { formal } from '../src/tuple.js'

export interface WorkQueueOptions {
  readonly tasks: number
  /** Worker connections per replica. */
  readonly workersPerReplica: number
  /** The producer's replica (default the first). */
  readonly producer?: string
}

export interface WorkQueueReport {
  readonly tasks: number
  readonly workers: number
  /** Results the producer collected, by task (each exactly once, or it throws). */
  readonly results: ReadonlyMap<number, { readonly worker: string; readonly square: number }>
  /** Tasks each worker did. */
  readonly perWorker: Readonly<Record<string, number>>
  readonly ms: number
}

export async function runWorkQueue(
  cluster: Cluster,
  options: WorkQueueOptions,
): Promise<WorkQueueReport> {
  const started = Date.now()
  const producer = await cluster.connect(options.producer ?? cluster.replicas[0]!.name)
  const perWorker: Record<string, number> = {}
  const workers = await Promise.all(
    cluster.replicas.flatMap((r) =>
      Array.from({ length: options.workersPerReplica }, async (_, w) => {
        const name = `${r.name}/${w}`
        const ts = await cluster.connect(r.name)
        perWorker[name] = 0
        const done = (async () => {
          for (;;) {
            const [, i, x] = await ts.in(['task', formal.int, formal.int])
            if (i < 0) break
            perWorker[name]!++
            await ts.out(['result', i, x * x, name])
          }
          await ts.close()
        })()
        return { name, done }
      }),
    ),
  )
  // Pipelined: every task in flight at once.
  await Promise.all(
    Array.from({ length: options.tasks }, (_, i) => producer.out(['task', i, i + 1])),
  )
  const results = new Map<number, { worker: string; square: number }>()
  for (let k = 0; k < options.tasks; k++) {
    const [, i, square, worker] = await producer.in([
      'result',
      formal.int,
      formal.int,
      formal.string,
    ])
    if (results.has(i)) throw new Error(`task ${i}: a second result (from ${worker})`)
    if (square !== (i + 1) * (i + 1)) throw new Error(`task ${i}: ${square} is not ${(i + 1) ** 2}`)
    results.set(i, { worker, square })
  }
  // Nothing left over: no task untaken, no stray result.
  if ((await producer.inp(['result', formal.any, formal.any, formal.any])) !== undefined)
    throw new Error('a result too many')
  await Promise.all(workers.map(() => producer.out(['task', -1, 0])))
  await Promise.all(workers.map((w) => w.done))
  await producer.close()
  return {
    tasks: options.tasks,
    workers: workers.length,
    results,
    perWorker,
    ms: Date.now() - started,
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { startCluster } = await import('../src/cluster.js')
  const cluster = await startCluster({ replicas: 3 })
  try {
    const report = await runWorkQueue(cluster, {
      tasks: Number(process.env.TASKS ?? 200),
      workersPerReplica: Number(process.env.WORKERS ?? 3),
    })
    console.log(
      `${report.tasks} tasks, ${report.workers} workers on ${cluster.replicas.length} replicas: every result collected once in ${report.ms} ms`,
    )
    console.log('tasks per worker:', report.perWorker)
    const states = await cluster.states()
    const digests = new Set(Object.values(states).map((s) => s.dump?.digest))
    console.log(`replica states equal: ${digests.size === 1}`)
  } finally {
    await cluster.stop()
  }
}
