/**
 * @packageDocumentation
 * Consul's replicated directory: a key-value server any Redis client can use. Each replica is
 * a process with its own LMDB directory; the group replicates every write through Psync and
 * an Order (`strongStack`: Membership and Recovery too — a minority refuses writes, a crashed
 * replica comes back with its state; `weakStack`: no agreement package at all).
 *
 * @example
 * ```ts
 * import { startCluster } from '@consul/directory/cluster'
 * const cluster = await startCluster({ replicas: 3 })
 * // redis-cli -p ${cluster.replicas[0].port} SET k v
 * ```
 */

export {
  ConfigError,
  keyFromFile,
  keyringFromFile,
  type PeerAddress,
  parseServeArgs,
  type ReplicaConfig,
  type RingKey,
  USAGE,
} from './config.js'
export {
  Connection,
  failureReply,
  REDIS_VERSION,
  type ReplicaStatus,
  type ServerContext,
  type ServerCounters,
  unknownCommand,
} from './connection.js'
export {
  commands,
  directoryClasses,
  directoryKeys,
  directoryMachine,
  keyedCommands,
  keyedDirectoryMachine,
  type RunArgs,
  readOnly,
} from './machine.js'
export {
  type DirectoryDump,
  dumpDirectory,
  type RunningDirectory,
  type StartOptions,
  startDirectoryReplica,
} from './replica.js'
export {
  type Argv,
  ErrorReply,
  encodeReply,
  MapReply,
  NULL_ARRAY,
  OK,
  type ParserLimits,
  PONG,
  ProtocolError,
  QUEUED,
  type Reply,
  RequestParser,
  SetReply,
  Simple,
  splitInline,
  Verbatim,
} from './resp.js'
export { type DirectoryServer, type DirectoryServerOptions, serveDirectory } from './server.js'
export type { StackOptions } from './stacks/options.js'
export { strongStack } from './stacks/strong.js'
export { weakStack } from './stacks/weak.js'
export {
  ARITY,
  arityError,
  Directory,
  type Entry,
  execute,
  glob,
  parseInteger,
  READS,
} from './store.js'
