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
 * - **Peers**: a member heard restarting (Psync's restart handshake) is recovering here until a
 *   new message of it arrives (or `maxRecoveringMs`): `recovery.started/finished` for it, which
 *   Failure Detection uses to lengthen its timeouts meanwhile.
 *
 * Nothing here but the framework's clock, storage, Psync, the Order, Membership and Failure
 * Detection; Recovery sends no message of its own.
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
  ORDER,
  type OrderControl,
  PSYNC,
  type PsyncControl,
  parseMessageId,
  type RecoveryControl,
  type RecoveryState,
  type SessionContext,
  StorageError,
  XKernelError,
} from '@consul/xkernel'
import { type CheckpointRecord, decodeCheckpoint, encodeCheckpoint } from './codec.js'
import type { ResolvedOptions } from './options.js'

type Caps = {
  psync: PsyncControl
  order: OrderControl
  membership: MembershipControl
  'failure-detection': FailureDetectionControl
}

const KEY_PREFIX = 'checkpoint/'
const HEAD_KEY = 'head'
const keyOf = (generation: number) => `${KEY_PREFIX}${String(generation).padStart(16, '0')}`

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
  private readonly recovering: boolean

  constructor(
    private readonly ctx: SessionContext<Caps>,
    private readonly options: ResolvedOptions,
  ) {
    this.psync = ctx.get(PSYNC)
    this.order = ctx.get(ORDER)
    this.membership = ctx.get(MEMBERSHIP)
    this.fd = ctx.get(FAILURE_DETECTION)
    const found = this.restoreNewest()
    this.recovering = ctx.group.restoring || found
    this.control = {
      state: () => this.current,
      ready: () => this.ready(),
      onStateChange: (handler) => this.stateHandlers.add(handler),
      checkpoint: () => this.demand(),
      lastCheckpoint: () => this.durable.at(-1),
      restoredFrom: () => this.restored,
      pruneFloor: () => this.declaredFloor,
    }
  }

  start(): void {
    this.offs.push(
      this.psync.onWave(() => this.maybeCheckpoint()),
      this.psync.onHeard((heard) => this.heard(heard)),
    )
    this.ctx.clock.setTimer(this.options.floorEveryMs, () => this.tick())
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
        this.ctx.log.error('recovery could not rejoin the view', { error: String(error) })
        this.finish('failed', error)
      },
    )
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    for (const off of this.offs.splice(0)) off()
    const error = new XKernelError('GROUP_CLOSED', `group ${this.ctx.group.port} is closed`)
    for (const w of this.demanded.splice(0)) w.reject(error)
    if (this.current === 'recovering') this.failReady(error)
  }

  gauges(): Record<string, number> {
    return {
      recoveringNow: this.current === 'recovering' ? 1 : 0,
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
      const bytes = this.ctx.storage.get(keyOf(generation))
      if (bytes === undefined) return undefined
      const record = decodeCheckpoint(bytes)
      if (record.generation !== generation) throw new DecodeError('INVALID', 'wrong generation')
      return { record, info: infoOf(record, bytes.length) }
    } catch (error) {
      if (!StorageError.isInstance(error) && !DecodeError.isInstance(error)) throw error
      return error as Error
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
    if (this.closed || this.writing || this.current === 'recovering') return
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
    const record = encodeCheckpoint({ generation, wave, states })
    const head = new Uint8Array(8)
    new DataView(head.buffer).setFloat64(0, generation)
    const ops = [
      { type: 'put' as const, key: keyOf(generation), value: record },
      { type: 'put' as const, key: HEAD_KEY, value: head },
    ]
    const drop = generation - this.options.keepCheckpoints
    if (drop >= 1) ops.push({ type: 'del' as const, key: keyOf(drop) } as never)
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

  // ---- prune floor and peers ---------------------------------------------------------------

  private tick(): void {
    if (this.closed) return
    this.ctx.clock.setTimer(this.options.floorEveryMs, () => this.tick())
    this.updateFloor()
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
