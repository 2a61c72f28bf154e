/**
 * @packageDocumentation
 * `@consul/linearizability` — is a history of concurrent operations linearizable? The
 * Wing–Gong–Lowe search with Lowe's memoisation and per-key partitioning (P-compositionality),
 * as porcupine does it, iterative and bounded in time; operations with unknown outcomes
 * (timeouts, dropped connections) may take effect any time after their call, or never. With
 * a Redis-like key-value model (multi-key commands and transactions keep their keys in one
 * part), a recorder, and a stale-read check for replicas that serve reads locally.
 *
 * @example
 * ```ts
 * import { check, createRecorder, type KvInput, type KvOutput, kvModel } from '@consul/linearizability'
 *
 * const recorder = createRecorder<KvInput, KvOutput>({ now: () => performance.now() })
 * const set = recorder.invoke('client-1', { op: 'set', key: 'x', value: '1' })
 * set.ok('OK')
 * const incr = recorder.invoke('client-2', { op: 'incr', key: 'x' })
 * incr.unknown() // the connection dropped: it may or may not have been applied
 * recorder.invoke('client-3', { op: 'get', key: 'x' }).ok(null)
 *
 * const result = check(kvModel(), recorder.history(), { timeoutMs: 5_000 })
 * result.result // 'illegal': nothing deletes x after the SET returned
 * console.log(result.counterexample?.text)
 * ```
 */
export {
  type CheckOptions,
  type CheckResult,
  type Counterexample,
  check,
  type PartitionResult,
  type Verdict,
} from './check.js'
export { LinearizabilityError, type LinearizabilityErrorCode } from './errors.js'
export { checkEvents, type HistoryEvent, operationsFromEvents } from './events.js'
export type { ClientId, Model, Operation, StepResult } from './model.js'
export {
  applyKv,
  describeKvInput,
  describeKvOutput,
  describeKvState,
  isKvError,
  isKvRead,
  type KvCommand,
  type KvError,
  type KvHash,
  type KvInput,
  type KvOperation,
  type KvOutput,
  type KvState,
  type KvValue,
  kvKeys,
  kvModel,
  kvReadOnly,
  kvReadOps,
} from './models/kv.js'
export { checkStaleReads, type StaleReadOptions } from './models/stale-reads.js'
export { partitionBy, partitionByKeys } from './partition.js'
export {
  createRecorder,
  type PendingOperation,
  type Recorder,
  type RecorderOptions,
} from './recorder.js'
