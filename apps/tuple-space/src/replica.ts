/**
 * One replica's side of the tuple space: the operations its clients call, and the local half
 * of blocking `in`/`rd` — it keeps its own waiters, watches the tuples applied here, and
 * submits a `claim` (rank 1) for a waiter when a matching tuple is present, so the hand-over
 * happens in the total order of rank-1 commands (see `machine.ts`).
 *
 * Invariant: a waiter registered in the replicated state is claimed only by the replica
 * (origin and session) that registered it, and only while its request is live here — so a
 * waiter of a crashed replica or of a cancelled request never takes a tuple. A tuple that a
 * claim (or a take) brings for a request that was cancelled meanwhile is put back with its
 * own key (`release`), so a cancelled request never consumes one. A request whose claim the
 * group refused may still have been served by it (outcome unknown): cancelled, it answers only
 * once the ordered `cancel` tells — the waiter still there, it took nothing (`CANCELLED`);
 * gone, the refused claim took a tuple (`UNAVAILABLE`).
 *
 * The replica schedules nothing on a clock: passes over its waiters run after commands are
 * applied and after its own submits settle (a microtask later), and `refresh()` — which the
 * server calls on a timer — follows the group into a new configuration and retries what an
 * unavailable group refused. So it runs unchanged in the simulator.
 */
import { type DispatcherControl, notApplied } from '@consul/xkernel'
import { TupleSpaceError, type TupleSpaceErrorCode } from './errors.js'
import {
  type ClaimResult,
  type Entry,
  firstMatch,
  type Mode,
  type Ref,
  refKey,
  type SpaceState,
  type TakeResult,
} from './machine.js'
import { type Template, type Tuple, validateTemplate, validateTuple } from './tuple.js'

export interface TupleSpaceReplicaOptions {
  /** The group's Dispatcher now; `undefined` while the group is being re-created. */
  readonly dispatcher: () => DispatcherControl | undefined
  /** This replica's member id. */
  readonly origin: string
  /** Unique to this start of the replica (a new one after every restart). */
  readonly session: string
  /** Structured log of background work: `forgot` (info), a release that failed (warn), … */
  readonly log?: (level: 'info' | 'warn', event: string, data: Record<string, unknown>) => void
}

/** A request that may wait: its result, and a way to give up on it. */
export interface PendingRequest<T> {
  readonly result: Promise<T>
  /**
   * Gives up: `result` rejects with `CANCELLED` at once, and the request will consume no
   * tuple — a tuple it had already taken in the group's order comes back with its own key.
   * One exception: after a claim that the group refused but may have applied, `result`
   * rejects once the group has ordered the cancel — `CANCELLED` if it took nothing,
   * `UNAVAILABLE` if that claim took a tuple. Returns false if the request had settled
   * already (then nothing changes).
   */
  cancel(): boolean
}

type Phase = 'taking' | 'waiting' | 'claiming' | 'done'

interface Request {
  readonly ref: Ref
  readonly key: string
  readonly mode: Mode
  readonly template: Template
  readonly block: boolean
  phase: Phase
  /** Settled towards the caller (a result, an error, or CANCELLED). */
  settled: boolean
  cancelled: boolean
  /** Registered in the replicated state and not known to be gone. */
  registered: boolean
  /** The entry this replica expects the pending claim to take (local bookkeeping only). */
  target: Entry | undefined
  /** Skip passes until the next `refresh()` (the group refused the last claim). */
  backoff: boolean
  /**
   * A claim was refused by the group and may still have been applied: whether this request
   * took a tuple is unknown until a later claim or cancel of it answers.
   */
  uncertain: boolean
  resolve(tuple: Tuple | undefined): void
  reject(error: TupleSpaceError): void
}

export interface ReplicaStats {
  /** Requests of this replica registered as waiters in the group (or about to be). */
  readonly waiting: number
  readonly claimsSubmitted: number
  /** Claims another replica's claim or take beat (answered `waiting`). */
  readonly claimsLost: number
  /** Tuples put back because their request was cancelled meanwhile. */
  readonly released: number
}

const cancelledError = () => new TupleSpaceError('CANCELLED', 'cancelled: it took nothing')

/** What a failed submit means for the client. */
export function errorOf(error: unknown): TupleSpaceError {
  if (TupleSpaceError.isInstance(error)) return error
  const e = error as { code?: unknown; message?: unknown; failure?: { code?: unknown } }
  const message = typeof e?.message === 'string' ? e.message : String(error)
  if (e?.code === 'HANDLER_FAILED' && typeof e.failure?.code === 'string')
    return new TupleSpaceError(e.failure.code as TupleSpaceErrorCode, message)
  if (e?.code === 'RECOVERING')
    return new TupleSpaceError('RECOVERING', `${message} (nothing was done)`)
  // Never sent (the Order's or the Dispatcher's `notApplied`): the outcome is known.
  if (notApplied(error))
    return new TupleSpaceError(
      'REFUSED',
      `${String(e?.code ?? 'ERROR')}: ${message} (nothing was done)`,
    )
  return new TupleSpaceError(
    'UNAVAILABLE',
    `${String(e?.code ?? 'ERROR')}: ${message} — the outcome is unknown`,
  )
}

export class TupleSpaceReplica {
  private readonly requests = new Map<string, Request>()
  private readonly cancels = new Map<string, Request>()
  private seq = 0
  private control: DispatcherControl | undefined
  private unsubscribe: (() => void) | undefined
  private passQueued = false
  private closed = false
  private forgetPending = false
  private claimsSubmitted = 0
  private claimsLost = 0
  private released = 0
  /** Takes, claims, cancels, releases and forgets submitted and not settled yet. */
  private inFlight = 0
  private readonly idleWaiters: (() => void)[] = []

  constructor(private readonly options: TupleSpaceReplicaOptions) {
    this.attach()
  }

  /**
   * Removes the waiters this replica's earlier sessions left in the group (a restart: their
   * clients are gone). Retried by `refresh()` until the group accepts it.
   */
  forgetEarlierSessions(): void {
    this.forgetPending = true
    this.schedulePass()
  }

  /** `out(tuple)`: resolves once the tuple is in the space here and its command is safe. */
  async out(tuple: Tuple): Promise<void> {
    const checked = validateTuple(tuple)
    const control = this.current()
    try {
      await control.submit('out', { ...this.nextRef(), tuple: checked })
    } catch (error) {
      throw errorOf(error)
    }
  }

  /** Blocking `in`: the first matching tuple, taken; waits until one is there. */
  in(template: Template): PendingRequest<Tuple> {
    return this.take('in', template, true) as PendingRequest<Tuple>
  }

  /** Blocking `rd`: the first matching tuple, left in the space; waits until one is there. */
  rd(template: Template): PendingRequest<Tuple> {
    return this.take('rd', template, true) as PendingRequest<Tuple>
  }

  /** `inp`: the first matching tuple, taken, or `undefined` if none is there now. */
  inp(template: Template): PendingRequest<Tuple | undefined> {
    return this.take('in', template, false)
  }

  /** `rdp`: the first matching tuple, or `undefined` if none is there now. */
  rdp(template: Template): PendingRequest<Tuple | undefined> {
    return this.take('rd', template, false)
  }

  /** The replicated state here (read only). */
  state(): SpaceState | undefined {
    return this.options.dispatcher()?.state() as SpaceState | undefined
  }

  stats(): ReplicaStats {
    return {
      waiting: [...this.requests.values()].filter((r) => r.registered).length,
      claimsSubmitted: this.claimsSubmitted,
      claimsLost: this.claimsLost,
      released: this.released,
    }
  }

  /**
   * Follows the group into a new handle (a restart from a fetched checkpoint, a move into a
   * new configuration) and retries claims, cancels and the forget that the group refused.
   */
  refresh(): void {
    this.attach()
    for (const r of this.requests.values()) r.backoff = false
    this.schedulePass()
  }

  /**
   * Resolves once nothing this replica submitted for its requests is in flight (takes,
   * claims, cancels, releases) — or after `timeoutMs`. A graceful stop cancels every request
   * (the connections close), waits here, and only then closes: a take or claim that lands
   * meanwhile has its tuple put back by a `release` instead of dying with the process.
   */
  drain(timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs)
      this.idleWaiters.push(() => {
        clearTimeout(timer)
        resolve()
      })
      this.checkIdle()
    })
  }

  /** Stops: every request still pending here rejects with `UNAVAILABLE`, nothing more is sent. */
  close(): void {
    this.closed = true
    this.unsubscribe?.()
    this.unsubscribe = undefined
    this.control = undefined
    for (const r of this.requests.values())
      this.settle(r, new TupleSpaceError('UNAVAILABLE', 'the replica is shutting down'))
    this.requests.clear()
  }

  private current(): DispatcherControl {
    if (this.closed) throw new TupleSpaceError('UNAVAILABLE', 'the replica is shutting down')
    this.attach()
    const control = this.control
    if (control === undefined)
      throw new TupleSpaceError(
        'RECOVERING',
        `${this.options.origin} is re-creating its group: nothing was done, retry`,
      )
    return control
  }

  private attach(): void {
    if (this.closed) return
    const control = this.options.dispatcher()
    if (control === this.control) return
    this.unsubscribe?.()
    this.unsubscribe = undefined
    this.control = control
    if (control === undefined) return
    // A tuple added here may match a waiter of ours: look (one pass per turn).
    this.unsubscribe = control.onApplied((c) => {
      if (c.tag === 'out' || c.tag === 'release') this.schedulePass()
    })
    // The state object is a new one (restored): targets of the old one mean nothing.
    for (const r of this.requests.values()) r.target = undefined
  }

  private track(control: DispatcherControl, tag: string, args: unknown): Promise<unknown> {
    this.inFlight++
    const done = () => {
      this.inFlight--
      // A microtask later: the settle's own follow-ups (a release, a queued cancel) count too.
      queueMicrotask(() => this.checkIdle())
    }
    const p = control.submit(tag, args)
    p.then(done, done)
    return p
  }

  private checkIdle(): void {
    if (this.inFlight > 0 || this.passQueued) return
    if ([...this.cancels.values()].some((r) => !r.backoff)) return
    for (const w of this.idleWaiters.splice(0)) w()
  }

  private nextRef(): Ref {
    return { origin: this.options.origin, session: this.options.session, seq: this.seq++ }
  }

  private take(mode: Mode, template: Template, block: boolean): PendingRequest<Tuple | undefined> {
    let resolve!: (t: Tuple | undefined) => void
    let reject!: (e: TupleSpaceError) => void
    const result = new Promise<Tuple | undefined>((res, rej) => {
      resolve = res
      reject = rej
    })
    let checked: Template
    let control: DispatcherControl
    try {
      checked = validateTemplate(template)
      control = this.current()
    } catch (error) {
      reject(errorOf(error))
      return { result, cancel: () => false }
    }
    const ref = this.nextRef()
    const r: Request = {
      ref,
      key: refKey(ref),
      mode,
      template: checked,
      block,
      phase: 'taking',
      settled: false,
      cancelled: false,
      registered: block, // it may be, from the moment the take is sent
      target: undefined,
      backoff: false,
      uncertain: false,
      resolve,
      reject,
    }
    this.requests.set(r.key, r)
    this.track(control, 'take', { ...ref, mode, template: checked, block }).then(
      (x) => this.taken(r, x as TakeResult),
      (error: unknown) => this.takeFailed(r, error),
    )
    return { result, cancel: () => this.cancel(r) }
  }

  private taken(r: Request, x: TakeResult): void {
    if (x.kind === 'taken') {
      r.registered = false
      this.deliver(r, x.entry)
    } else if (x.kind === 'none') {
      r.registered = false
      this.finish(r)
      this.settle(r, undefined)
    } else {
      r.phase = 'waiting'
      if (r.cancelled) this.queueCancel(r)
      else this.schedulePass()
    }
  }

  private takeFailed(r: Request, error: unknown): void {
    const e = errorOf(error)
    this.settle(r, e)
    // Not sent (RECOVERING, REFUSED): it registered nothing.
    if (e.code === 'RECOVERING' || e.code === 'REFUSED' || !r.block) {
      r.registered = false
      this.finish(r)
      return
    }
    // The take may have registered a waiter: remove it (nobody would ever claim it).
    r.phase = 'waiting'
    r.cancelled = true
    this.queueCancel(r)
  }

  private cancel(r: Request): boolean {
    if (r.settled || r.cancelled) return !r.settled
    r.cancelled = true
    // After a refused claim only the ordered cancel can tell whether it took nothing.
    if (!(r.uncertain && r.phase === 'waiting')) this.settle(r, cancelledError())
    if (r.phase === 'waiting') this.queueCancel(r)
    // 'taking' / 'claiming': the result decides (a tuple comes back with release).
    return true
  }

  private deliver(r: Request, entry: Entry): void {
    this.finish(r)
    if (r.cancelled) {
      if (r.mode === 'in') this.release(entry)
      return
    }
    this.settle(r, entry.tuple)
  }

  private release(entry: Entry): void {
    this.released++
    const control = this.options.dispatcher()
    if (control === undefined) {
      this.options.log?.('warn', 'release.lost', { entry: entry.seq, reason: 'no group' })
      return
    }
    this.track(control, 'release', { entries: [entry] }).then(undefined, (error: unknown) =>
      // Not retried: it may have been applied (a second one would duplicate the tuple).
      this.options.log?.('warn', 'release.failed', { seq: entry.seq, error: String(error) }),
    )
  }

  private settle(r: Request, outcome: Tuple | undefined | TupleSpaceError): void {
    if (r.settled) return
    r.settled = true
    if (TupleSpaceError.isInstance(outcome)) r.reject(outcome)
    else r.resolve(outcome)
  }

  private finish(r: Request): void {
    r.phase = 'done'
    r.target = undefined
    this.requests.delete(r.key)
    this.cancels.delete(r.key)
  }

  private queueCancel(r: Request): void {
    this.cancels.set(r.key, r)
    this.schedulePass()
  }

  private schedulePass(): void {
    if (this.passQueued || this.closed) return
    this.passQueued = true
    void Promise.resolve().then(() => {
      this.passQueued = false
      this.pass()
      this.checkIdle()
    })
  }

  /** Claims for waiters with a match here; sends queued cancels and the forget. */
  private pass(): void {
    this.attach()
    const control = this.control
    if (control === undefined || this.closed) return
    if (this.forgetPending) {
      this.forgetPending = false
      this.track(control, 'forget', {
        origin: this.options.origin,
        session: this.options.session,
      }).then(
        (n) => this.options.log?.('info', 'forgot', { waiters: n }),
        () => {
          this.forgetPending = true // retried at the next refresh
        },
      )
    }
    const cancels = [...this.cancels.values()].filter((r) => r.phase === 'waiting' && !r.backoff)
    if (cancels.length > 0) {
      for (const r of cancels) this.cancels.delete(r.key)
      this.track(control, 'cancel', { waiters: cancels.map((r) => r.ref) }).then(
        (x) => {
          const removed = x as boolean[]
          cancels.forEach((r, i) => {
            // Removed now, or gone before (a claim or a take settled it): either way done.
            r.registered = false
            if (r.phase !== 'waiting') return
            this.finish(r)
            // Only an uncertain request is still unsettled here (see `cancel`).
            this.settle(
              r,
              removed[i] === true
                ? cancelledError()
                : new TupleSpaceError(
                    'UNAVAILABLE',
                    'cancelled, but a claim the group refused earlier had served it (an in took its tuple): the outcome is unknown here',
                  ),
            )
          })
        },
        () => {
          for (const r of cancels) {
            r.backoff = true
            this.cancels.set(r.key, r)
          }
        },
      )
    }
    const state = control.state() as SpaceState
    const reserved = new Set<Entry>()
    for (const r of this.requests.values())
      if (r.phase === 'claiming' && r.target !== undefined && r.mode === 'in')
        reserved.add(r.target)
    for (const r of this.requests.values()) {
      if (r.phase !== 'waiting' || r.cancelled || r.backoff) continue
      const entry = firstMatch(state, r.template, r.mode === 'in' ? reserved : undefined)
      if (entry === undefined) continue
      if (r.mode === 'in') reserved.add(entry)
      this.claim(control, r, entry)
    }
  }

  private claim(control: DispatcherControl, r: Request, target: Entry): void {
    r.phase = 'claiming'
    r.target = target
    this.claimsSubmitted++
    this.track(control, 'claim', r.ref).then(
      (x) => {
        const c = x as ClaimResult
        r.target = undefined
        // The entry this claim reserved may still be there (it took an older one, or none):
        // other waiters skipped it, so look again.
        this.schedulePass()
        if (c.kind === 'taken') {
          r.registered = false
          this.deliver(r, c.entry)
        } else if (c.kind === 'waiting') {
          this.claimsLost++
          r.uncertain = false // still registered after it: an earlier claim took nothing
          r.phase = 'waiting'
          if (r.cancelled) this.queueCancel(r)
          else this.schedulePass()
        } else {
          r.registered = false
          this.finish(r)
          this.settle(
            r,
            new TupleSpaceError(
              'UNAVAILABLE',
              'the group no longer holds this request (taken after a failover?): the outcome is unknown',
            ),
          )
        }
      },
      () => {
        // Not applied, or applied with the answer lost: claim again after the next refresh
        // (a second claim of a served waiter answers gone).
        r.target = undefined
        r.phase = 'waiting'
        r.backoff = true
        r.uncertain = true
        this.schedulePass() // its reserved entry is free for the other waiters
        if (r.cancelled) this.queueCancel(r)
      },
    )
  }
}
