/**
 * One Dispatcher session per group: decodes every command the Order delivers, applies it to
 * the state machine, and settles the submitter's promise with the outcome.
 *
 * Determinism: what a delivered command does depends only on its bytes and the state — an
 * unknown tag or undecodable bytes are dropped (counted, `dispatcher.dropped`), a handler's
 * throw becomes a `CommandFailure` (its name, message and string code: no stack, nothing
 * local), a handler that returns a promise is a failure too (its later effects would land at
 * different points at different replicas). So replicas running the same machine reach the
 * same state and the same outcome for every command.
 */
import {
  type AppliedCommand,
  type CommandFailure,
  type CommandOutcome,
  type DispatcherControl,
  Listeners,
  ORDER,
  type OrderControl,
  type OrderedCommand,
  type SessionContext,
  type SubmitOptions,
} from '@consul/xkernel'
import { decodeCommand, decodeValue, encodeCommand, encodeValue } from './codec.js'
import { DispatchError } from './errors.js'
import type { Commands, StateMachine } from './machine.js'

type Caps = { order: OrderControl }

interface Pending {
  applied(outcome: CommandOutcome): void
  fail(error: Error): void
}

const SNAPSHOT_VERSION = 1

/** What a thrown value becomes: the same at every replica. */
export function failureOf(thrown: unknown): CommandFailure {
  if (thrown instanceof Error) {
    const code = (thrown as { code?: unknown }).code
    return typeof code === 'string'
      ? { name: thrown.name, message: thrown.message, code }
      : { name: thrown.name, message: thrown.message }
  }
  return { name: 'Error', message: String(thrown) }
}

class AppliedQueue implements AsyncIterableIterator<AppliedCommand> {
  private readonly buffered: AppliedCommand[] = []
  private readonly waiting: ((r: IteratorResult<AppliedCommand>) => void)[] = []
  done = false

  constructor(private readonly remove: (q: AppliedQueue) => void) {}

  push(command: AppliedCommand): void {
    const waiter = this.waiting.shift()
    if (waiter !== undefined) waiter({ value: command, done: false })
    else this.buffered.push(command)
  }

  next(): Promise<IteratorResult<AppliedCommand>> {
    const value = this.buffered.shift()
    if (value !== undefined) return Promise.resolve({ value, done: false })
    if (this.done) return Promise.resolve({ value: undefined, done: true })
    return new Promise((resolve) => this.waiting.push(resolve))
  }

  return(): Promise<IteratorResult<AppliedCommand>> {
    this.end()
    return Promise.resolve({ value: undefined, done: true })
  }

  end(): void {
    if (this.done) return
    this.done = true
    this.buffered.length = 0
    this.remove(this)
    for (const waiter of this.waiting.splice(0)) waiter({ value: undefined, done: true })
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<AppliedCommand> {
    return this
  }
}

/** A refusal at `submit`: the command was never sent (`DispatchError.notApplied`). */
const NOT_SENT = { notApplied: true } as const
export class DispatcherSession<S> {
  readonly control: DispatcherControl
  private readonly order: OrderControl
  private state: S
  private appliedCount = 0
  private readonly pending = new Map<number, Pending>()
  private nextNonce: number
  private readonly handlers = new Listeners<[AppliedCommand]>(
    () => new DispatchError('INVALID_ARGUMENT', 'onApplied takes a function'),
  )
  private readonly queues = new Set<AppliedQueue>()
  private closed = false
  /** Recovery's verdict on this replica: replaying after a restart, no new commands. */
  private recovering = false
  private readonly off: () => void

  constructor(
    private readonly ctx: SessionContext<Caps>,
    private readonly machine: StateMachine<S, Commands<S>>,
  ) {
    this.order = ctx.get(ORDER)
    this.state = machine.initial()
    // A fresh range per incarnation: a nonce names one submit of this incarnation only.
    this.nextNonce = ctx.random.int(2 ** 31) * 2 ** 20
    this.off = this.order.onDeliver((c) => this.apply(c))
    const mine = (e: { group: string; member: string }) =>
      e.group === ctx.group.port && e.member === ctx.self
    ctx.events.on('recovery.started', (e) => {
      if (mine(e)) this.recovering = true
    })
    ctx.events.on('recovery.finished', (e) => {
      if (mine(e)) this.recovering = false
    })
    this.control = {
      tags: machine.tags,
      submit: (tag, args, options) => this.submit(tag, args, options),
      onApplied: (handler) => this.handlers.add(handler),
      applied: () => {
        const q = new AppliedQueue((x) => this.queues.delete(x))
        if (this.closed) q.end()
        else this.queues.add(q)
        return q
      },
      state: () => this.state,
      snapshot: () => this.snapshot(),
      restore: (bytes) => this.restore(bytes),
    }
  }

  gauges(): Record<string, number> {
    return { pendingNow: this.pending.size, appliedTotal: this.appliedCount }
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    this.off()
    for (const p of [...this.pending.values()])
      p.fail(new DispatchError('CLOSED', `group ${this.ctx.group.port} closed`))
    this.pending.clear()
    for (const q of [...this.queues]) q.end()
  }

  private submit(tag: string, args: unknown, options: SubmitOptions | undefined): Promise<unknown> {
    if (this.closed)
      return Promise.reject(
        new DispatchError('CLOSED', `group ${this.ctx.group.port} is closed`, undefined, NOT_SENT),
      )
    if (this.recovering) {
      this.ctx.counters.inc('refusedRecovering')
      return Promise.reject(
        new DispatchError(
          'RECOVERING',
          `${this.ctx.self} is recovering in group ${this.ctx.group.port} (replaying its log, then rejoining the view): retry once it is active`,
          undefined,
          NOT_SENT,
        ),
      )
    }
    if (typeof tag !== 'string' || !Object.hasOwn(this.machine.commands, tag))
      return Promise.reject(
        new DispatchError(
          'UNKNOWN_COMMAND',
          `${String(tag)} is not a command of this machine (${this.machine.tags.join(', ')})`,
          undefined,
          NOT_SENT,
        ),
      )
    const nonce = this.nextNonce++
    let bytes: Uint8Array
    try {
      bytes = encodeCommand({ tag, args, nonce })
    } catch (error) {
      return Promise.reject(
        new DispatchError(
          'INVALID_ARGUMENT',
          `the arguments of ${tag} cannot be encoded: ${error instanceof Error ? error.message : String(error)}`,
          undefined,
          NOT_SENT,
        ),
      )
    }
    return new Promise((resolve, reject) => {
      let outcome: CommandOutcome | undefined
      let ordered = false
      let settled = false
      const settle = (error: Error | undefined, value?: unknown) => {
        if (settled) return
        settled = true
        this.pending.delete(nonce)
        if (error === undefined) resolve(value)
        else reject(error)
      }
      const finish = () => {
        if (outcome === undefined || !ordered) return
        if (outcome.ok) settle(undefined, outcome.result)
        else
          settle(
            new DispatchError(
              'HANDLER_FAILED',
              `${tag} failed: ${outcome.failure.name}: ${outcome.failure.message}`,
              outcome.failure,
            ),
          )
      }
      this.pending.set(nonce, {
        applied: (o) => {
          outcome = o
          finish()
        },
        fail: (error) => settle(error),
      })
      this.order.submit(bytes, options).then(
        () => {
          ordered = true
          finish()
        },
        (error: unknown) => settle(error instanceof Error ? error : new Error(String(error))),
      )
    })
  }

  private apply(c: OrderedCommand): void {
    const decoded = decodeCommand(c.command)
    const own = c.sender === this.ctx.self && !c.restored
    if (typeof decoded === 'string') {
      this.drop(c, 'malformed', decoded)
      return
    }
    const waiting = own ? this.pending.get(decoded.nonce) : undefined
    const handler = Object.hasOwn(this.machine.commands, decoded.tag)
      ? this.machine.commands[decoded.tag]
      : undefined
    if (handler === undefined) {
      this.drop(c, 'unknown-tag', `tag ${decoded.tag}`)
      waiting?.fail(
        new DispatchError('UNKNOWN_COMMAND', `${decoded.tag} is not a command of this machine`),
      )
      return
    }
    let outcome: CommandOutcome
    try {
      const result = handler(this.state, decoded.args)
      if (
        typeof result === 'object' &&
        result !== null &&
        typeof (result as { then?: unknown }).then === 'function'
      ) {
        // Its later effects would land at different points at different replicas.
        void (result as Promise<unknown>).then(undefined, () => {})
        outcome = {
          ok: false,
          failure: {
            name: 'DispatchError',
            message: `handler ${decoded.tag} returned a promise: handlers must be synchronous`,
            code: 'ASYNC_HANDLER',
          },
        }
      } else outcome = { ok: true, result }
    } catch (thrown) {
      outcome = { ok: false, failure: failureOf(thrown) }
    }
    this.appliedCount++
    this.ctx.counters.inc(outcome.ok ? 'applied' : 'failed')
    waiting?.applied(outcome)
    const applied: AppliedCommand = {
      id: c.id,
      sender: c.sender,
      tag: decoded.tag,
      args: decoded.args,
      outcome,
      restored: c.restored,
      position: c.position,
    }
    this.handlers.emit(applied)
    for (const q of this.queues) q.push(applied)
  }

  private drop(c: OrderedCommand, reason: 'unknown-tag' | 'malformed', detail: string): void {
    this.ctx.counters.inc(reason === 'malformed' ? 'droppedMalformed' : 'droppedUnknownTag')
    this.ctx.log.warn('delivered command dropped', { id: c.id, from: c.sender, reason, detail })
    if (this.ctx.events.has('dispatcher.dropped'))
      this.ctx.events.emit('dispatcher.dropped', { group: this.ctx.group.port, id: c.id, reason })
  }

  private snapshot(): Uint8Array {
    return encodeValue([SNAPSHOT_VERSION, this.appliedCount, this.machine.snapshot(this.state)])
  }

  private restore(bytes: Uint8Array): void {
    if (!(bytes instanceof Uint8Array))
      throw new DispatchError('INVALID_ARGUMENT', 'restore takes the bytes of a snapshot()')
    let value: unknown
    try {
      value = decodeValue(bytes)
    } catch (error) {
      throw new DispatchError('INVALID_ARGUMENT', `not a dispatcher snapshot: ${String(error)}`)
    }
    if (
      !Array.isArray(value) ||
      value.length !== 3 ||
      value[0] !== SNAPSHOT_VERSION ||
      !Number.isSafeInteger(value[1]) ||
      value[1] < 0
    )
      throw new DispatchError('INVALID_ARGUMENT', 'not a dispatcher snapshot (version 1)')
    this.state = this.machine.restore(value[2])
    this.appliedCount = value[1] as number
  }
}
