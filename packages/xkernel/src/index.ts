/**
 * @packageDocumentation
 * `@consul/xkernel` — the object framework every Consul protocol stands on: protocol and
 * session objects, typed composition, typed control interfaces, a typed event bus, message
 * buffers, and the services protocols use instead of ambient I/O (`Clock`, `Random`,
 * `Transport`, `StableStorage`, logger, counters) — and the cross-package interfaces
 * (`PsyncControl`, the Order specification `OrderControl`). The helpers for implementing an
 * Order live in the subpath `@consul/xkernel/order`.
 *
 * @example
 * ```ts
 * import { capability, defineProtocol, stack, MessageBuffer } from '@consul/xkernel'
 *
 * interface EchoControl { say(text: string): void }
 * const ECHO = capability<'echo', EchoControl>('echo')
 *
 * const echo = defineProtocol({
 *   name: 'echo',
 *   provides: [ECHO],
 *   create: () => ({
 *     open(ctx) {
 *       const net = ctx.claimNetwork()
 *       net.onReceive((from, msg) => ctx.log.info('heard', { from, text: msg.readString() }))
 *       return { controls: { echo: { say: (text) => net.broadcast(MessageBuffer.fromString(text)) } } }
 *     },
 *   }),
 * })
 *
 * const host = await stack().use(echo).start({ transport })
 * const group = await host.open({ port: 'chat', members: ['a', 'b'] })
 * group.get(ECHO).say('hello')
 * ```
 */

export { untilActive } from './active.js'
export { jsonLineSink } from './adapters/json-line-sink.js'
export { realClock } from './adapters/real-clock.js'
export { systemRandom } from './adapters/real-random.js'
export {
  type CapabilitiesOf,
  type Capability,
  type CapabilityMap,
  type ControlOf,
  capability,
  type NoCapabilities,
} from './capability.js'
export {
  type Channel,
  type ChannelKind,
  channelOf,
  channels,
  defineChannel,
  FAILURE_DETECTION_CHANNEL,
  MEMBERSHIP_CHANNEL,
  OPERATIONS,
  RECOVERY_CHANNEL,
} from './channels.js'
export { type Clock, ScopedClock, type Timer } from './clock.js'
export { Counters } from './counters.js'
export {
  type AppliedCommand,
  type CommandFailure,
  type CommandOutcome,
  DISPATCHER,
  type DispatcherControl,
} from './dispatcher-control.js'
export { type ChannelSubscription, DIVIDER, type DividerControl } from './divider-control.js'
export {
  DecodeError,
  type DecodeErrorCode,
  notApplied,
  StorageCorruptedError,
  StorageError,
  type StorageErrorCode,
  XKernelError,
  type XKernelErrorCode,
} from './errors.js'
export {
  type ConsulEvents,
  EventBus,
  type EventHandler,
  type EventName,
  type TraceMessage,
  type TraceRecord,
  type TraceRecords,
} from './events.js'
export {
  FAILURE_DETECTION,
  type FailureDetectionControl,
  type Suspicion,
  type SuspicionReason,
} from './failure-detection-control.js'
export { maxGauges } from './gauges.js'
export type {
  Group,
  Host,
  HostDescription,
  HostServices,
  HostState,
  HostStats,
  OpenHooks,
  ProtocolDescription,
} from './host.js'
export { Listeners } from './listeners.js'
export {
  createLogger,
  type LogFields,
  type Logger,
  type LoggerOptions,
  type LogLevel,
  type LogRecord,
  type LogSink,
  type LogThreshold,
  memorySink,
} from './logger.js'
export { canonicalMembers, groupTag } from './members.js'
export {
  MEMBERSHIP,
  type MembershipControl,
  type PrimaryState,
  type View,
  type ViewChange,
  type ViewChangeReason,
} from './membership-control.js'
export {
  type CrashOptions,
  MemoryStorage,
  type MemoryStorageOptions,
  memoryStorage,
  type StorageCounters,
} from './memory-storage.js'
export { DEFAULT_HEADROOM, HeaderWriter, MessageBuffer } from './message-buffer.js'
export {
  type DeliveryLevel,
  ORDER,
  ORDER_CHANNEL,
  type OrderControl,
  type OrderedCommand,
  type OrderPosition,
  type SubmitOptions,
} from './order-spec.js'
export {
  type AnyProtocolFactory,
  defineProtocol,
  type GroupCheckpoints,
  type GroupInfo,
  type GroupNetwork,
  type GroupSpec,
  type Lobby,
  type NextConfiguration,
  type ProtocolContext,
  type ProtocolDefinition,
  type ProtocolFactory,
  type ProtocolInstance,
  type Session,
  type SessionContext,
  type SessionEvents,
  type SessionState,
} from './protocol.js'
export {
  type HeardFrom,
  type HeardKind,
  type MessageId,
  messageId,
  PSYNC,
  type PsyncControl,
  type PsyncMessage,
  parseMessageId,
} from './psync-control.js'
export { digestBytes, hashString, type Random, seededRandom } from './random.js'
export {
  type CheckpointInfo,
  RECOVERY,
  type RecoveryControl,
  type RecoveryState,
  type TransferProgress,
} from './recovery-control.js'
export { type CompositionCheck, Stack, stack, validateFactories } from './stack.js'
export {
  compareKeys,
  MAX_KEY_BYTES,
  prefixEnd,
  type ScanEntry,
  type ScanOptions,
  type StableStorage,
  type StorageOp,
  scopedStorage,
  validateKey,
  validateOp,
  validateOps,
} from './storage.js'
export type { NodeId, ReceiveHandler, Transport } from './transport.js'
export {
  MAX_VARINT,
  MAX_VARINT_BYTES,
  readUvarint,
  uvarintLength,
  writeUvarint,
  zigzagDecode,
  zigzagEncode,
} from './varint.js'
