/**
 * @packageDocumentation
 * `@consul/tuple-space` — a replicated Linda tuple space on Consul's semantic order (the
 * paper's planned application, DESIGN §5). `out(tuple)`, `in(template)`, `rd(template)`,
 * `inp(template)`, `rdp(template)` over a line-delimited JSON protocol on TCP; every replica
 * runs the strong stack (Psync, the Divider, Failure Detection, Membership,
 * `@consul/order-semantic`, the Dispatcher, Recovery, Restart) on UDP and LMDB. `out` commutes
 * with `out` (rank 0, delivered early); `in`, `rd` and their probes are ordered (rank 1), and a
 * blocked `in` is handed its tuple by an ordered `claim`, so every tuple is taken by exactly
 * one `in` and every replica agrees which.
 *
 * @example
 * ```ts
 * import { connect, formal } from '@consul/tuple-space'
 *
 * const ts = await connect({ port: 7101 }) // a running consul-tuple-space replica
 * await ts.out(['task', 1, 'resize photo.jpg'])
 * const [, n, what] = await ts.in(['task', formal.int, formal.string]) // [ 'task', number, string ]
 * console.log(await ts.inp(['task', formal.int, formal.string])) // undefined: none left
 * await ts.close()
 * ```
 */
export {
  type ConnectOptions,
  connect,
  type ReplicaInfo,
  type TupleSpace,
  type WaitOptions,
} from './client.js'
export {
  ConfigError,
  keyFromFile,
  keyringFromFile,
  parseArgs,
  type ReplicaConfig,
  type RingKey,
  USAGE,
} from './config.js'
export { ERROR_CODES, TupleSpaceError, type TupleSpaceErrorCode } from './errors.js'
export {
  type ClaimResult,
  compareEntries,
  type Entry,
  entries,
  firstMatch,
  type Mode,
  type OutArgs,
  type Ref,
  rankOf,
  refKey,
  restoreSpace,
  type SpaceState,
  snapshotSpace,
  type TakeArgs,
  type TakeResult,
  tupleSpaceClasses,
  tupleSpaceMachine,
  type Waiter,
} from './machine.js'
export {
  OPS,
  type Op,
  parseRequest,
  type Request,
  type RequestId,
  templateFromJson,
  templateToJson,
  tupleFromJson,
  tupleToJson,
} from './protocol.js'
export {
  errorOf,
  type PendingRequest,
  type ReplicaStats,
  TupleSpaceReplica,
  type TupleSpaceReplicaOptions,
} from './replica.js'
export {
  dumpSpace,
  type ReplicaDump,
  type RunningReplica,
  type StartOptions,
  startReplica,
} from './run.js'
export { type ServeOptions, serveTupleSpace, type TupleServer } from './serve.js'
export { type TupleSpaceStackOptions, tupleSpaceStack } from './stack.js'
export {
  compareTuples,
  compareValues,
  FORMAL_TYPES,
  type Formal,
  type FormalType,
  formal,
  isFormal,
  MAX_ARITY,
  MAX_TUPLE_BYTES,
  type Matched,
  matches,
  type Template,
  type TemplateField,
  type Tuple,
  type Value,
  validateTemplate,
  validateTuple,
  valuesEqual,
} from './tuple.js'
