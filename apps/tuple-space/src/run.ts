/**
 * One replica process: the strong stack on UDP (with the group key) and LMDB, the group
 * opened afresh or recovered from storage (`recoverReady`), the replica's waiter logic, and
 * the TCP front. A supervisor tick (every `tickMs`) follows the group through restarts and
 * moves (`refresh`) and, should this member be excluded and taken back meanwhile, waits it
 * back to active (`untilActive`: a restart from a fetched checkpoint included).
 */
import { createHash, randomBytes } from 'node:crypto'
import type { Server } from 'node:net'
import { join } from 'node:path'
import { crc32 } from 'node:zlib'
import { recoverReady } from '@consul/restart'
import { lmdbStorage } from '@consul/storage-lmdb'
import { udp } from '@consul/transport-udp'
import {
  createLogger,
  DISPATCHER,
  type Logger,
  MEMBERSHIP,
  RECOVERY,
  untilActive,
} from '@consul/xkernel'
import type { ReplicaConfig, RingKey } from './config.js'
import { type SpaceState, snapshotSpace } from './machine.js'
import { templateToJson, tupleToJson } from './protocol.js'
import { TupleSpaceReplica } from './replica.js'
import { serveTupleSpace } from './serve.js'
import { tupleSpaceStack } from './stack.js'

export interface ReplicaDump {
  /** Rank-1 commands applied. */
  readonly epoch: number
  /** Tuples in key order, as protocol JSON. */
  readonly tuples: unknown[][]
  /** Waiters in registration order: `[origin, session, seq, mode, template]`. */
  readonly waiters: unknown[][]
  /** SHA-256 of the canonical state (equal states, equal digests). */
  readonly digest: string
}

/** The replicated state as plain JSON, and its digest. */
export function dumpSpace(state: SpaceState): ReplicaDump {
  const snap = snapshotSpace(state)
  const tuples = snap.entries.map(([epoch, origin, session, seq, tuple]) => [
    epoch,
    origin,
    session,
    seq,
    tupleToJson(tuple),
  ])
  const waiters = snap.waiters.map(([origin, session, seq, mode, template]) => [
    origin,
    session,
    seq,
    mode,
    templateToJson(template),
  ])
  const digest = createHash('sha256')
    .update(JSON.stringify([snap.epoch, tuples, waiters]))
    .digest('hex')
  return { epoch: snap.epoch, tuples, waiters, digest }
}

/** How long a graceful stop waits for the requests' commands in flight (see `stop`). */
const STOP_DRAIN_MS = 2_000

export interface RunningReplica {
  readonly replica: TupleSpaceReplica
  readonly server: Server
  readonly tcpPort: number
  readonly session: string
  /** Whether this start recovered the group from storage. */
  readonly restored: boolean
  /** The recovery state now (`active`, `recovering`, …, or `none` while re-created). */
  recoveryState(): string
  /** Membership's view now (`null` while the group is re-created). */
  view(): { id: number; configuration: number; members: readonly string[] } | null
  dump(): ReplicaDump | undefined
  /** Replaces the group's keyring (a rotation; throws for a bad ring, keeping the old one). */
  setKeys(keys: readonly RingKey[]): void
  stop(): Promise<void>
}

export interface StartOptions {
  /** The group key (id 0) … */
  readonly key?: Uint8Array
  /** … or the keyring (`keyringFromFile`); one of the two is required. */
  readonly keys?: readonly RingKey[]
  /** Supervisor tick (ms). Default 100. */
  readonly tickMs?: number
  readonly logger?: Logger
}

export async function startReplica(
  config: ReplicaConfig,
  options: StartOptions,
): Promise<RunningReplica> {
  const logger = options.logger ?? createLogger({ level: config.logLevel })
  const me = config.peers[config.self]!
  const keys =
    options.keys ?? (options.key === undefined ? undefined : [{ id: 0, key: options.key }])
  if (keys === undefined || keys.length === 0)
    throw new Error('startReplica: a group key (key or keys) is required')
  const transport = await udp({
    self: config.self,
    peers: config.peers,
    port: me.port,
    host: me.host,
    keys,
    encrypt: config.encrypt,
    // Each start's epoch above the last one, durably, even if the clock steps back.
    epochFile: join(config.dataDir, 'transport-epoch'),
    groupId: config.group,
    logger,
  })
  const storage = await lmdbStorage(config.dataDir)
  const host = await tupleSpaceStack({
    suspectAfterMs: config.suspectAfterMs,
    checkpointEveryWaves: config.checkpointEveryWaves,
    crc32,
  }).start({ transport, storage, logger })
  const restored = host.storedGroups().some((g) => g.port === config.group)
  await recoverReady(host, [{ port: config.group, members: Object.keys(config.peers) }])
  const group = () => host.group(config.group)
  const session = randomBytes(8).toString('hex')
  const log = logger.child({ host: config.self, group: config.group })
  const replica = new TupleSpaceReplica({
    origin: config.self,
    session,
    dispatcher: () => {
      try {
        return group()?.get(DISPATCHER)
      } catch {
        return undefined
      }
    },
    log: (level, event, data) => log[level](event, data),
  })
  // The clients of earlier sessions died with them: their waiters go.
  replica.forgetEarlierSessions()
  const recoveryState = () => {
    try {
      return group()?.get(RECOVERY).state() ?? 'none'
    } catch {
      return 'none'
    }
  }
  const view = () => {
    try {
      const v = group()?.get(MEMBERSHIP).view()
      return v === undefined
        ? null
        : { id: v.id, configuration: v.configuration, members: v.members }
    } catch {
      return null
    }
  }
  let supervising = false
  const tick = setInterval(() => {
    replica.refresh()
    const g = group()
    const state = recoveryState()
    if (g === undefined || supervising || state === 'active' || state === 'none') return
    supervising = true
    untilActive(host, g, 3)
      .then(
        () => replica.refresh(),
        (error: unknown) => log.error('the group did not come back', { error: String(error) }),
      )
      .finally(() => (supervising = false))
  }, options.tickMs ?? 100)
  host.events.on('group.reconfigured', () => replica.refresh())
  const tcp = await serveTupleSpace(replica, {
    port: config.listen.port,
    host: config.listen.host,
    maxConnections: config.maxConnections,
    info: () => ({ replica: config.self, session, recovery: recoveryState(), view: view() }),
    onError: (error) => log.warn('tcp.error', { error: String(error) }),
  })
  return {
    replica,
    server: tcp.server,
    tcpPort: tcp.port,
    session,
    restored,
    recoveryState,
    view,
    dump: () => {
      const state = replica.state()
      return state === undefined ? undefined : dumpSpace(state)
    },
    setKeys: (next) => transport.setKeys(next),
    stop: async () => {
      clearInterval(tick)
      await tcp.close() // every connection's pending requests are cancelled …
      // … and a take or claim still in flight for one of them gets its tuple put back, not lost
      // with the process (bounded: a minority-side group may never answer).
      await replica.drain(STOP_DRAIN_MS)
      replica.close()
      await host.stop()
    },
  }
}
