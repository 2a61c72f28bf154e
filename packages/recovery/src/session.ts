/**
 * One group's Recovery session.
 *
 * - **Checkpoint**: after each wave Psync completes, once the Order's wave is
 *   `checkpointEveryWaves` past the last checkpoint (or one was asked for) and the Order is at
 *   a wave boundary, every session's state is taken at once (`ctx.checkpoints.take()`: the
 *   Order, the Dispatcher's machine, Membership's view and cuts; `undefined` while one of them
 *   cannot — a decision open — and the checkpoint waits for the next boundary) and written with
 *   the wave as **one** storage batch, the oldest record beyond `keepCheckpoints` deleted in
 *   the same batch. Once the batch is durable, Failure Detection's alive messages carry the
 *   wave of the oldest checkpoint kept.
 * - **Prune floor**: the lowest such position over the view, declared to Psync; nothing a
 *   member could still need after a restart — from either checkpoint it keeps — is pruned.
 * - **Restart**: at open, before any session starts, the newest readable checkpoint is given
 *   back to every session (`ctx.checkpoints.restore`); an unreadable one is skipped for the
 *   one before. Psync then replays its log; the Order skips what the checkpoint covers. While
 *   that runs the replica is `recovering`: `recovery.started` for itself (the Dispatcher refuses
 *   new commands); then `MembershipControl.up()`, and once every member of the view
 *   acknowledged it, `active` and `recovery.finished`.
 * - **Joins** (`join.ts`): a join request's wave moves the group into its next configuration.
 * - **Peers**: a member heard restarting (Psync's restart handshake) is recovering here until a
 *   new message of it arrives (or `maxRecoveringMs`): `recovery.started/finished` for it, which
 *   Failure Detection uses to lengthen its timeouts meanwhile.
 *
 * Nothing here but the framework's clock, storage, Psync, the Order, Membership and Failure
 * Detection. Its own datagrams: state transfer (Psync's direct datagrams), joins (the group's
 * lobby, and join requests as Psync messages — `join.ts`), and the empty wave acknowledgements
 * of a member that is fetching.
 */
import {
  type CheckpointInfo,
  DecodeError,
  FAILURE_DETECTION,
  type FailureDetectionControl,
  type HeardFrom,
  Listeners,
  MEMBERSHIP,
  type MembershipControl,
  type NodeId,
  OPERATIONS,
  ORDER,
  type OrderControl,
  PSYNC,
  type PsyncControl,
  type PsyncMessage,
  parseMessageId,
  RECOVERY_CHANNEL,
  type RecoveryControl,
  type RecoveryState,
  type SessionContext,
  StorageError,
  type StorageOp,
  type Timer,
  XKernelError,
} from '@consul/xkernel'
import { type CheckpointRecord, encodeCheckpoint, encodeManifest, manifestOf } from './codec.js'
import { Joins } from './join.js'
import type { ResolvedOptions } from './options.js'
import {
  deleteOps,
  HEAD_KEY,
  headValue,
  isReadError,
  KEY_PREFIX,
  keyOf,
  partOps,
  readRecord,
  TRANSFER_KEY,
} from './store.js'
import {
  Donor,
  decodeMarker,
  decodeTransfer,
  Fetcher,
  type TransferFrame,
  type TransferMarker,
} from './transfer.js'

type Caps = {
  psync: PsyncControl
  order: OrderControl
  membership: MembershipControl
  'failure-detection': FailureDetectionControl
}

/** An empty message on the recovery channel (no protocol reads it): a wave acknowledgement. */
const WAVE_ACK = Uint8Array.of(RECOVERY_CHANNEL.id)
const WAVE_ACK_MS = 1

const infoOf = (record: CheckpointRecord, bytes: number): CheckpointInfo => ({
  generation: record.generation,
  wave: record.wave,
  bytes,
  protocols: record.states.map((s) => s.protocol),
})

interface Waiter {
  readonly resolve: (info: CheckpointInfo) => void
  readonly reject: (error: Error) => void
}

export class RecoverySession {
  readonly control: RecoveryControl
  private readonly psync: PsyncControl
  private readonly order: OrderControl
  private readonly membership: MembershipControl
  private readonly fd: FailureDetectionControl
  private current: RecoveryState = 'active'
  private failure: Error | undefined
  private readonly readyWaiters: { resolve: () => void; reject: (e: Error) => void }[] = []
  private readonly stateHandlers = new Listeners<[RecoveryState]>(
    () => new XKernelError('INVALID_ARGUMENT', 'onStateChange takes a function'),
  )
  /** The last generation written (durable or not). */
  private generation = 0
  /** The wave of the last checkpoint written (or restored). */
  private lastWave = 0
  /** Durable checkpoints still in storage, oldest first. */
  private durable: CheckpointInfo[] = []
  private restored: { generation: number; wave: number; skipped: number } | undefined
  private demanded: Waiter[] = []
  private writing = false
  private declaredFloor = 0
  /** Peers heard restarting: their last seq then, and since when. */
  private readonly peersRecovering = new Map<NodeId, { lastSeq: number; since: number }>()
  private readonly offs: (() => void)[] = []
  private closed = false
  private started = false
  private readonly recovering: boolean
  private readonly donor: Donor
  private fetcher: Fetcher | undefined
  /** A transfer a crash interrupted: resumed at start. */
  private marker: TransferMarker | undefined
  /** The fetched checkpoint is durable: the group must restart from it. */
  private restartRequired: XKernelError | undefined
  /** A pending empty message that carries the waves forward while transferring. */
  private waveAck: Timer | undefined
  /** Generations past `keepCheckpoints` kept while a fetcher still reads them. */
  private readonly deferredDeletes = new Set<number>()
  /** Joins: requests in the conversation, the lobby, the move into the next configuration. */
  private readonly joins: Joins

  constructor(
    private readonly ctx: SessionContext<Caps>,
    private readonly options: ResolvedOptions,
  ) {
    this.psync = ctx.get(PSYNC)
    this.order = ctx.get(ORDER)
    this.membership = ctx.get(MEMBERSHIP)
    this.fd = ctx.get(FAILURE_DETECTION)
    const found = this.restoreNewest()
    this.marker = this.readMarker()
    // A member that moved into this configuration itself starts from the state it carried
    // (restored above) and is active at once; every other start with a checkpoint recovers.
    this.recovering =
      ctx.group.restoring || (found && !ctx.group.reconfigured) || this.marker !== undefined
    this.donor = new Donor(ctx, this.psync, options, () =>
      this.current === 'active' || this.current === 'recovering'
        ? this.durable.at(-1)?.generation
        : undefined,
    )
    this.control = {
      state: () => this.current,
      ready: () => this.ready(),
      onStateChange: (handler) => this.stateHandlers.add(handler),
      checkpoint: () => this.demand(),
      lastCheckpoint: () => this.durable.at(-1),
      restoredFrom: () => this.restored,
      pruneFloor: () => this.declaredFloor,
      transfer: () => this.fetcher?.progress(),
    }
    this.joins = new Joins({
      ctx: ctx as unknown as SessionContext<Record<string, never>>,
      psync: this.psync,
      order: this.order,
      membership: this.membership,
      options,
      state: () => this.current,
    })
    // At open, so that the replay of Psync's log (in its start) is seen: a join request
    // replayed after a crash holds the Order again, and its wave moves the group as before.
    this.offs.push(
      this.psync.onDeliver((m) => this.joins.onDeliver(m)),
      this.psync.onWave((wave, messages) => {
        if (!this.joins.onWave(wave, messages) && this.started) this.maybeCheckpoint()
      }),
      this.psync.onStable(() => this.joins.settle()),
    )
  }

  start(): void {
    this.started = true
    this.offs.push(
      this.psync.onHeard((heard) => this.heard(heard)),
      this.psync.onDirect((from, payload) => this.direct(from, payload)),
      this.psync.onDeliver((m) => this.acknowledgeWhileTransferring(m)),
    )
    this.ctx.clock.setTimer(this.options.floorEveryMs, () => this.tick())
    this.ctx.clock.setTimer(this.options.joinRetryMs, () => this.joinTick())
    // No checkpoint to start from, and Psync's log no longer starts at wave 0 (its first waves
    // were pruned) or the state comes from before this configuration (a member that joined, or
    // moved here without the state): replaying the log cannot rebuild it — fetch a checkpoint.
    const firstWave = this.psync.waveFloor()
    const none = (this.restored?.generation ?? 0) === 0
    if (
      this.marker !== undefined ||
      (none && (firstWave > 0 || this.ctx.group.configuration > 0))
    ) {
      this.startTransfer(Math.max(0, firstWave - 1))
      return
    }
    if (!this.recovering) return
    this.setState('recovering')
    this.ctx.events.emit('recovery.started', { group: this.ctx.group.port, member: this.ctx.self })
    this.membership.up().then(
      () => {
        if (this.closed || this.current !== 'recovering') return
        this.ctx.counters.inc('rejoined')
        this.finish('active', undefined)
      },
      (error: Error) => {
        if (this.closed) return
        if (XKernelError.isInstance(error) && error.code === 'EXCLUDED' && this.options.rejoin) {
          // Excluded while it was down: it asks to come back (a join: the group moves into a
          // new configuration with it, and it fetches the state there). Still recovering.
          this.ctx.counters.inc('excludedWhileDown')
          this.ctx.log.info('excluded while down; asking to rejoin')
          return
        }
        this.ctx.log.error('recovery could not rejoin the view', { error: String(error) })
        this.finish('failed', error)
      },
    )
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    this.joins.close()
    this.fetcher?.close()
    for (const off of this.offs.splice(0)) off()
    const error = new XKernelError('GROUP_CLOSED', `group ${this.ctx.group.port} is closed`)
    for (const w of this.demanded.splice(0)) w.reject(error)
    if (this.current === 'recovering' || this.current === 'transferring') this.failReady(error)
  }

  gauges(): Record<string, number> {
    return {
      recoveringNow: this.current === 'recovering' || this.current === 'transferring' ? 1 : 0,
      transferringNow: this.current === 'transferring' ? 1 : 0,
      checkpointWave: this.durable.at(-1)?.wave ?? 0,
      pruneFloorDeclared: this.declaredFloor,
      peersRecoveringNow: this.peersRecovering.size,
    }
  }

  // ---- restart -----------------------------------------------------------------------------

  /** Gives every session the newest readable checkpoint back; true when there was one. */
  private restoreNewest(): boolean {
    const { counters, log } = this.ctx
    let skipped = 0
    for (const generation of this.storedGenerations()) {
      const read = this.read(generation)
      if (read === undefined) continue
      if (read instanceof Error) {
        // Torn, corrupted or foreign: the one before it will do (the prune floor never
        // passed the oldest checkpoint kept, so the log still covers it).
        skipped++
        counters.inc('checkpointsUnreadable')
        log.warn('checkpoint unreadable; trying the one before', {
          generation,
          error: String(read),
        })
        continue
      }
      const { record, info } = read
      this.ctx.checkpoints.restore(record.states)
      this.lastWave = record.wave
      this.restored = { generation, wave: record.wave, skipped }
      this.dropOlderThan(generation - this.options.keepCheckpoints + 1)
      // The record before it, if readable, is still the fallback: the position stays at it.
      const older = generation > 1 ? this.read(generation - 1) : undefined
      this.durable = older === undefined || older instanceof Error ? [info] : [older.info, info]
      this.fd.setCheckpointPosition(this.durable[0]!.wave)
      counters.inc('restoredFromCheckpoint')
      log.info('restored from checkpoint', { generation, wave: record.wave, skipped })
      return true
    }
    if (skipped > 0) this.restored = { generation: 0, wave: 0, skipped }
    return false
  }

  /** The record of `generation`: `undefined` when there is none, the error when unreadable. */
  private read(
    generation: number,
  ): { readonly record: CheckpointRecord; readonly info: CheckpointInfo } | Error | undefined {
    try {
      const read = readRecord(this.ctx.storage, generation, this.options.crc32)
      if (read === undefined) return undefined
      // A fetched record keeps its donor's generation inside; the manifest's is ours.
      return {
        record: read.record,
        info: infoOf({ ...read.record, generation }, read.manifest.length),
      }
    } catch (error) {
      if (!isReadError(error)) throw error
      return error as Error
    }
  }

  /** A state transfer a crash interrupted (its marker), if any and readable. */
  private readMarker(): TransferMarker | undefined {
    try {
      const bytes = this.ctx.storage.get(TRANSFER_KEY)
      if (bytes === undefined) return undefined
      const marker = decodeMarker(bytes)
      this.generation = Math.max(this.generation, marker.generation)
      return marker
    } catch (error) {
      if (!isReadError(error)) throw error
      this.ctx.counters.inc('transferMarkerUnreadable')
      return undefined
    }
  }

  /** The generations in storage, newest first (from the head record, or a scan). */
  private storedGenerations(): number[] {
    const { storage } = this.ctx
    try {
      const head = storage.get(HEAD_KEY)
      if (head !== undefined && head.length === 8) {
        const newest = new DataView(head.buffer, head.byteOffset, 8).getFloat64(0)
        if (Number.isSafeInteger(newest) && newest >= 1) {
          this.generation = newest
          const out: number[] = []
          for (let g = newest; g >= 1 && g > newest - 2 * this.options.keepCheckpoints; g--)
            out.push(g)
          return out
        }
      }
    } catch (error) {
      if (!StorageError.isInstance(error)) throw error
      this.ctx.counters.inc('checkpointsUnreadable')
    }
    // No readable head: whatever the keys say.
    const out: number[] = []
    try {
      for (const { key } of storage.scan({ prefix: KEY_PREFIX })) {
        const g = Number(key.slice(KEY_PREFIX.length))
        if (Number.isSafeInteger(g) && g >= 1) out.push(g)
      }
    } catch (error) {
      if (!StorageError.isInstance(error)) throw error
      this.ctx.counters.inc('checkpointsUnreadable')
    }
    out.sort((a, b) => b - a)
    if (out.length > 0) this.generation = Math.max(this.generation, out[0]!)
    return out
  }

  private ready(): Promise<void> {
    if (this.restartRequired !== undefined) return Promise.reject(this.restartRequired)
    if (this.current === 'active') return Promise.resolve()
    if (this.current === 'failed') return Promise.reject(this.failure)
    return new Promise((resolve, reject) => this.readyWaiters.push({ resolve, reject }))
  }

  private finish(state: 'active' | 'failed', error: Error | undefined): void {
    this.setState(state)
    this.ctx.events.emit('recovery.finished', { group: this.ctx.group.port, member: this.ctx.self })
    if (state === 'active') for (const w of this.readyWaiters.splice(0)) w.resolve()
    else this.failReady(error!)
  }

  private failReady(error: Error): void {
    this.failure =
      XKernelError.isInstance(error) && error.code !== 'INVALID_ARGUMENT'
        ? error
        : new XKernelError('RECOVERY_FAILED', `recovery failed: ${error.message}`, {
            cause: error,
          })
    for (const w of this.readyWaiters.splice(0)) w.reject(this.failure)
  }

  private setState(state: RecoveryState): void {
    if (this.current === state) return
    this.current = state
    this.ctx.counters.inc(`state.${state}`)
    this.stateHandlers.emit(state)
  }

  // ---- checkpoints -------------------------------------------------------------------------

  private demand(): Promise<CheckpointInfo> {
    if (this.closed)
      return Promise.reject(
        new XKernelError('GROUP_CLOSED', `group ${this.ctx.group.port} is closed`),
      )
    const promise = new Promise<CheckpointInfo>((resolve, reject) =>
      this.demanded.push({ resolve, reject }),
    )
    // At a boundary already (an idle group may not complete a wave for a while): take it now.
    this.maybeCheckpoint()
    return promise
  }

  private maybeCheckpoint(): void {
    if (this.closed || this.writing || this.current !== 'active') return
    const wave = this.order.position().wave
    const due = wave - this.lastWave >= this.options.checkpointEveryWaves
    if (!due && this.demanded.length === 0) return
    if (!this.order.atWaveBoundary()) return
    const states = this.ctx.checkpoints.take()
    if (states === undefined) {
      this.ctx.counters.inc('checkpointsDeferred')
      return
    }
    const generation = this.generation + 1
    const record = encodeCheckpoint({ generation, wave, states }, this.options.crc32)
    const { manifest, parts } = manifestOf(
      generation,
      wave,
      record,
      this.options.partBytes,
      this.options.crc32,
    )
    const ops: StorageOp[] = [
      ...partOps(generation, parts),
      { type: 'put', key: keyOf(generation), value: encodeManifest(manifest) },
      { type: 'put', key: HEAD_KEY, value: headValue(generation) },
    ]
    const drop = generation - this.options.keepCheckpoints
    if (drop >= 1) {
      // A record a peer is fetching stays until it is done with it.
      if (this.donor.pinned(drop)) this.deferredDeletes.add(drop)
      else ops.push(...deleteOps(this.ctx.storage, drop))
    }
    this.ctx.storage.batch(ops)
    this.generation = generation
    this.lastWave = wave
    this.writing = true
    const waiters = this.demanded.splice(0)
    const info = infoOf({ generation, wave, states }, record.length)
    this.ctx.counters.inc('checkpoints')
    this.ctx.counters.inc('checkpointBytes', record.length)
    this.ctx.storage.sync().then(
      () => {
        this.writing = false
        // Durable even if the group closed meanwhile: the callers learn it either way.
        for (const w of waiters) w.resolve(info)
        if (this.closed) return
        this.durable.push(info)
        this.durable = this.durable.filter((d) => d.generation > drop)
        // The oldest checkpoint kept: a fallback to it must still find its waves in the log.
        this.fd.setCheckpointPosition(this.durable[0]!.wave)
        this.updateFloor()
      },
      (error: unknown) => {
        this.writing = false
        this.ctx.counters.inc('checkpointSyncFailures')
        this.ctx.log.error('checkpoint not durable', { generation, error: String(error) })
        for (const w of waiters) w.reject(error instanceof Error ? error : new Error(String(error)))
      },
    )
  }

  // ---- state transfer ----------------------------------------------------------------------

  private startTransfer(minWave: number): void {
    if (this.membership.view().members.every((m) => m === this.ctx.self)) {
      // Nobody to fetch from: this state cannot be rebuilt here.
      this.setState('recovering')
      this.ctx.events.emit('recovery.started', {
        group: this.ctx.group.port,
        member: this.ctx.self,
      })
      this.ctx.log.error(
        'no usable checkpoint, the log is pruned, and no other member to fetch one from',
      )
      this.finish(
        'failed',
        new XKernelError(
          'RECOVERY_FAILED',
          `group ${this.ctx.group.port}: no usable checkpoint, the log starts at wave ${minWave + 1}, and the view has no other member to fetch one from`,
        ),
      )
      return
    }
    const marker = this.marker
    const generation = marker?.generation ?? this.generation + 1
    this.generation = Math.max(this.generation, generation)
    this.setState('transferring')
    this.ctx.events.emit('recovery.started', { group: this.ctx.group.port, member: this.ctx.self })
    this.ctx.counters.inc('transfersStarted')
    this.fetcher = new Fetcher(
      {
        ctx: this.ctx,
        psync: this.psync,
        options: this.options,
        donors: () => this.membership.view().members.filter((m) => m !== this.ctx.self),
        complete: (g, manifest, donor) => this.transferred(g, manifest.wave, donor),
      },
      generation,
      minWave,
      marker,
    )
    this.fetcher.start()
  }

  /**
   * While fetching, this member's Order has stopped, so nothing of its own would carry the
   * waves forward and every wave would wait for its next alive message: after a command-bearing
   * message of another member it sends an empty one (the Orders' acknowledgement rule, so
   * these never ping-pong), on the recovery channel, which no protocol reads.
   */
  private acknowledgeWhileTransferring(m: PsyncMessage): void {
    if (this.current !== 'transferring' || this.waveAck !== undefined) return
    if (m.sender === this.ctx.self || m.restored || m.payload[0] !== OPERATIONS.id) return
    this.waveAck = this.ctx.clock.setTimer(WAVE_ACK_MS, () => {
      this.waveAck = undefined
      if (this.closed || this.current !== 'transferring') return
      try {
        this.psync.send(WAVE_ACK)
        this.ctx.counters.inc('transferWaveAcks')
      } catch {
        // Not ready yet (the restart handshake): the next command-bearing message tries again.
      }
    })
  }

  private transferred(generation: number, wave: number, donor: NodeId): void {
    this.ctx.log.info('state transfer complete; the group restarts from the fetched checkpoint', {
      generation,
      wave,
      donor,
    })
    if (this.ctx.group.reconfigured) {
      // This member moved into the configuration by itself, without the state: nobody waits on
      // it to restart the group, so it does (a waiting ready() sees GROUP_CLOSED, and the
      // group is host.group(port) again).
      this.ctx.counters.inc('transferRestarts')
      this.ctx.restart().catch((error: unknown) => {
        this.ctx.log.error('restart after the state transfer failed', { error: String(error) })
      })
      return
    }
    this.restartRequired = new XKernelError(
      'RESTART_REQUIRED',
      `group ${this.ctx.group.port}: a checkpoint of wave ${wave} was fetched from ${donor}; restart the group (group.restart()) to restore it`,
    )
    for (const w of this.readyWaiters.splice(0)) w.reject(this.restartRequired)
  }

  private direct(from: NodeId, payload: Uint8Array): void {
    if (this.closed) return
    let frame: TransferFrame | undefined
    try {
      frame = decodeTransfer(payload)
    } catch (error) {
      if (!DecodeError.isInstance(error)) throw error
      this.ctx.counters.inc('transferDroppedMalformed')
      return
    }
    if (frame === undefined) return
    if (frame.kind === 1) this.donor.onAsk(from, frame.minWave, frame.resume)
    else if (frame.kind === 4) this.donor.onGet(from, frame.generation, frame.first, frame.count)
    else this.fetcher?.onFrame(from, frame)
  }

  /** Deletes every stored generation below `lowest` (left by a crash while one was pinned). */
  private dropOlderThan(lowest: number): void {
    const ops: StorageOp[] = []
    try {
      for (const { key } of this.ctx.storage.scan({ prefix: KEY_PREFIX, end: keyOf(lowest) })) {
        ops.push({ type: 'del', key })
      }
    } catch (error) {
      if (!isReadError(error)) throw error
      return
    }
    if (ops.length > 0) this.ctx.storage.batch(ops)
  }

  // ---- prune floor and peers ---------------------------------------------------------------

  private joinTick(): void {
    if (this.closed) return
    this.ctx.clock.setTimer(this.options.joinRetryMs, () => this.joinTick())
    this.joins.tick()
  }

  private tick(): void {
    if (this.closed) return
    this.ctx.clock.setTimer(this.options.floorEveryMs, () => this.tick())
    this.updateFloor()
    for (const generation of [...this.deferredDeletes]) {
      if (this.donor.pinned(generation)) continue
      this.deferredDeletes.delete(generation)
      this.donor.forget(generation)
      this.ctx.storage.batch(deleteOps(this.ctx.storage, generation))
    }
    const now = this.ctx.clock.now()
    for (const [member, r] of [...this.peersRecovering])
      if (now - r.since >= this.options.maxRecoveringMs) this.peerFinished(member)
  }

  private updateFloor(): void {
    const own = this.durable[0]?.wave
    if (own === undefined) return
    const positions = this.fd.checkpointPositions()
    let floor = own
    for (const member of this.membership.view().members) {
      if (member === this.ctx.self) continue
      floor = Math.min(floor, positions[member] ?? 0)
    }
    if (floor <= this.declaredFloor) return
    this.declaredFloor = floor
    this.psync.setPruneFloor(floor)
    this.ctx.counters.inc('floorRaised')
  }

  private heard(heard: HeardFrom): void {
    const { member } = heard
    if (member === this.ctx.self) return
    if (heard.kind === 'restart') {
      if (this.peersRecovering.has(member)) return
      this.peersRecovering.set(member, { lastSeq: heard.lastSeq, since: this.ctx.clock.now() })
      this.ctx.events.emit('recovery.started', { group: this.ctx.group.port, member })
      return
    }
    const r = this.peersRecovering.get(member)
    if (r === undefined || heard.kind !== 'message' || heard.message === undefined) return
    const id = parseMessageId(heard.message)
    // A new message of its own: it is past its replay.
    if (id !== undefined && id.sender === member && id.seq > r.lastSeq) this.peerFinished(member)
  }

  private peerFinished(member: NodeId): void {
    if (!this.peersRecovering.delete(member)) return
    this.ctx.events.emit('recovery.finished', { group: this.ctx.group.port, member })
  }
}
