/**
 * @packageDocumentation
 * Consul's replicated directory (work in progress, issue #13): the Redis protocol layer so
 * far — an incremental RESP2/RESP3 request parser and a reply encoder.
 */

export { commands, directoryClasses, directoryMachine, type RunArgs, readOnly } from './machine.js'
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
