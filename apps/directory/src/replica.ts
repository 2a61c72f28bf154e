/**
 * One directory replica process: the strong or weak stack on UDP (with the group key) and
 * LMDB, the group opened afresh or recovered from storage (`recoverReady`), and the Redis
 * front. A supervisor tick follows the group through restarts and moves and, should this
 * member be excluded and taken back meanwhile, waits it back to active (`untilActive`, a
 * restart from a fetched checkpoint included).
 */
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { crc32 } from 'node:zlib'
import { joinGroup } from '@consul/recovery'
import { recoverReady } from '@consul/restart'
import { lmdbStorage } from '@consul/storage-lmdb'
import { udp } from '@consul/transport-udp'
import {
  createLogger,
  DISPATCHER,
  type DispatcherControl,
  type Logger,
  MEMBERSHIP,
  RECOVERY,
  untilActive,
} from '@consul/xkernel'
import type { ReplicaConfig, RingKey } from './config.js'
import type { ReplicaStatus } from './connection.js'
import { type DirectoryServer, serveDirectory } from './server.js'
import { strongStack } from './stacks/strong.js'
import { weakStack } from './stacks/weak.js'
import type { Directory } from './store.js'

export interface DirectoryDump {
  /** Replicated commands applied. */
  readonly applied: number
  readonly keys: number
  /** SHA-256 of the state in key order (equal states, equal digests). */
  readonly digest: string
}

/** The state's digest: keys sorted, with their types, values, fields and expiry. */
export function dumpDirectory(d: Directory): DirectoryDump {
  const hash = createHash('sha256')
  hash.update(`${d.applied}\n${d.clock}\n`)
  for (const k of [...d.keys.keys()].sort()) {
    const e = d.keys.get(k)!
    hash.update(`${Buffer.from(k, 'latin1').toString('hex')} ${e.type} ${e.expireAt ?? '-'} `)
    if (e.type === 'string') hash.update(e.value)
    else
      for (const f of [...e.fields.keys()].sort())
        hash.update(
          `${Buffer.from(f, 'latin1').toString('hex')}=${e.fields.get(f)!.toString('hex')};`,
        )
    hash.update('\n')
  }
  return { applied: d.applied, keys: d.keys.size, digest: hash.digest('hex') }
}

export interface RunningDirectory {
  readonly server: DirectoryServer
  readonly port: number
  /** Whether this start recovered the group from storage. */
  readonly restored: boolean
  status(): ReplicaStatus
  dump(): DirectoryDump | undefined
  /**
   * Replaces the group's keyring (a rotation: add the new id on every replica, wait until
   * `INFO consul` shows `transport_peers_behind:0` everywhere, then drop the old one). Throws
   * the transport's error for a bad ring, keeping the one it had.
   */
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

export async function startDirectoryReplica(
  config: ReplicaConfig,
  options: StartOptions,
): Promise<RunningDirectory> {
  const logger = options.logger ?? createLogger({ level: config.logLevel })
  const log = logger.child({ host: config.self, group: config.group })
  const me = config.peers[config.self]!
  const keys =
    options.keys ?? (options.key === undefined ? undefined : [{ id: 0, key: options.key }])
  if (keys === undefined || keys.length === 0)
    throw new Error('startDirectoryReplica: a group key (key or keys) is required')
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
  const stackOptions = {
    order: config.order,
    suspectAfterMs: config.suspectAfterMs,
    checkpointEveryWaves: config.checkpointEveryWaves,
    crc32,
  }
  const host = await (config.stack === 'strong'
    ? strongStack(stackOptions)
    : weakStack(stackOptions)
  ).start({ transport, storage, logger })
  const restored = host.storedGroups().some((g) => g.port === config.group)
  if (restored && config.stack === 'weak') {
    // No Recovery: nothing to restore a state from, and Psync's log is pruned (a replay
    // would stop at a wave gap and serve an empty state). Refuse rather than serve wrong data.
    await host.stop()
    throw new Error(
      `${config.self}: the weak stack keeps no checkpoints, so a replica cannot come back with its state ` +
        `after it stopped (${config.dataDir} holds an earlier run). Start the whole group afresh on empty ` +
        'data directories, or use --stack strong (Recovery: restart, rejoin, state transfer).',
    )
  }
  // biome-ignore lint/suspicious/noExplicitAny: the two stacks' groups differ in capabilities
  const group = () => host.group(config.group) as any
  const dispatcher = (): DispatcherControl | undefined => {
    try {
      return group()?.get(DISPATCHER)
    } catch {
      return undefined
    }
  }
  const recovery = () => {
    try {
      return group()?.get(RECOVERY)
    } catch {
      return undefined
    }
  }
  const status = (): ReplicaStatus => {
    const g = group()
    const r = recovery()
    const state = g === undefined ? 'starting' : r === undefined ? 'active' : r.state()
    let view: ReplicaStatus['view'] = null
    try {
      const v = g?.get(MEMBERSHIP).view()
      if (v !== undefined) view = { id: v.id, configuration: v.configuration, members: v.members }
    } catch {
      // the weak stack has no Membership
    }
    const transfer = state === 'transferring' ? r?.transfer() : undefined
    const d = state === 'active' ? (dispatcher()?.state() as Directory | undefined) : undefined
    const keys = transport.keyStatus()
    const newest = keys.held[keys.held.length - 1]
    return {
      self: config.self,
      stack: config.stack,
      order: config.order,
      recovery: state,
      view,
      applied: d?.applied ?? 0,
      transport: {
        encrypted: config.encrypt,
        keyIds: keys.held,
        // Peers not yet heard advertising this replica's newest key (a rotation under way).
        peersBehind: Object.values(keys.peers).filter((p) => p.peerNewest !== newest).length,
      },
      ...(transfer === undefined
        ? {}
        : {
            transfer: {
              bytes: Math.round(
                (transfer.bytes * transfer.partsReceived) / Math.max(1, transfer.parts),
              ),
              total: transfer.bytes,
            },
          }),
    }
  }
  let supervising = false
  const tick = setInterval(() => {
    const g = group()
    const r = recovery()
    if (g === undefined || r === undefined || supervising) return
    const state = r.state()
    if (state === 'active') return
    supervising = true
    untilActive(host, g, 3)
      .catch((error: unknown) => log.error('the group did not come back', { error: String(error) }))
      .finally(() => (supervising = false))
  }, options.tickMs ?? 100)
  tick.unref()
  // Listening before the group is back: clients get LOADING (and INFO loading:1) meanwhile.
  const server = await serveDirectory({
    port: config.listen.port,
    host: config.listen.host,
    dispatcher,
    status,
    linearizableReads: config.linearizableReads,
    writeTimeoutMs: config.writeTimeoutMs,
    maxClients: config.maxClients,
    ...(config.password === undefined ? {} : { password: config.password }),
  })
  supervising = true // recoverReady does the supervisor's work until the group is active
  try {
    if (restored || config.init === 'bootstrap')
      await recoverReady(host, [{ port: config.group, members: Object.keys(config.peers) }])
    else if (config.init === 'join' && config.stack === 'strong')
      await joinGroup(host, {
        port: config.group,
        contacts: Object.keys(config.peers).filter((p) => p !== config.self),
        timeoutMs: 120_000,
      })
    else
      throw new Error(
        `${config.self}: ${config.dataDir} holds no group yet. Start with --bootstrap for the first start ` +
          'of a new group (every replica at once), or --join to join the running group and fetch its state ' +
          '(a new replica, or one whose data was lost; strong stack only). Opening a fresh group here would ' +
          'serve an empty state.',
      )
  } catch (error) {
    clearInterval(tick)
    await server.close()
    await host.stop().catch(() => {})
    throw error
  } finally {
    supervising = false
  }
  return {
    server,
    port: server.port,
    restored,
    status,
    dump: () => {
      const d = dispatcher()?.state() as Directory | undefined
      return d === undefined ? undefined : dumpDirectory(d)
    },
    setKeys: (next) => transport.setKeys(next),
    stop: async () => {
      clearInterval(tick)
      await server.close()
      await host.stop()
    },
  }
}
