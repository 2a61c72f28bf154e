/**
 * Typed commands and the state machine they act on. A *handler* is a synchronous,
 * deterministic function `(state, args) → result`: it may change `state` in place (or leave
 * it), it must not read clocks, randomness or anything outside `state` and `args` — every
 * replica runs it on the same state with the same arguments and must reach the same state.
 */
import type { AppliedCommand, DispatcherControl, SubmitOptions } from '@consul/xkernel'
import { decodeCommand } from './codec.js'
import { DispatchError } from './errors.js'

// biome-ignore lint/suspicious/noExplicitAny: a handler's argument type is inferred per command
export type Handler<S> = (state: S, args: any) => unknown

/** The commands of one machine, name → handler. */
export type Commands<S> = Readonly<Record<string, Handler<S>>>

/** The arguments command `K` takes. */
export type ArgsOf<C, K extends keyof C> = C[K] extends (state: never, args: infer A) => unknown
  ? A
  : never
/** What command `K`'s handler returns. */
export type ResultOf<C, K extends keyof C> = C[K] extends (...a: never[]) => infer R ? R : never

/**
 * Gives the commands their types (the identity at run time): each argument type comes from
 * the handler's second parameter, each result from its return type.
 */
export function defineCommands<S, C extends Commands<S>>(commands: C & Commands<S>): C {
  return commands
}

export interface StateMachineDefinition<S, C extends Commands<S>> {
  /** A fresh state (every replica starts from it). */
  initial(): S
  readonly commands: C
  /**
   * The state as a msgpack-encodable value (for checkpoints and state transfer). Default:
   * the state itself — right for plain objects, arrays and Maps.
   */
  snapshot?(state: S): unknown
  /** The inverse of `snapshot`. Default: the value itself. */
  restore?(snapshot: unknown): S
}

/** A typed view of a dispatcher running machine `M`. */
export interface TypedDispatcher<S, C extends Commands<S>> {
  submit<K extends keyof C & string>(
    tag: K,
    args: ArgsOf<C, K>,
    options?: SubmitOptions,
  ): Promise<ResultOf<C, K>>
  state(): S
  onApplied(handler: (command: AppliedCommand) => void): () => void
  applied(): AsyncIterableIterator<AppliedCommand>
  readonly control: DispatcherControl
}

export interface StateMachine<S, C extends Commands<S>> {
  readonly commands: C
  /** The command names, sorted. */
  readonly tags: readonly string[]
  initial(): S
  snapshot(state: S): unknown
  restore(snapshot: unknown): S
  /** The typed view of a dispatcher's control running this machine. */
  client(control: DispatcherControl): TypedDispatcher<S, C>
}

/** Checks a machine definition; bad ones throw `DispatchError('INVALID_ARGUMENT')`. */
export function stateMachine<S, C extends Commands<S>>(
  definition: StateMachineDefinition<S, C>,
): StateMachine<S, C> {
  if (typeof definition !== 'object' || definition === null)
    throw new DispatchError('INVALID_ARGUMENT', 'stateMachine takes { initial, commands }')
  if (typeof definition.initial !== 'function')
    throw new DispatchError('INVALID_ARGUMENT', 'stateMachine: initial must be a function')
  const commands = definition.commands
  if (typeof commands !== 'object' || commands === null)
    throw new DispatchError('INVALID_ARGUMENT', 'stateMachine: commands must be an object')
  const tags = Object.keys(commands).sort()
  if (tags.length === 0)
    throw new DispatchError('INVALID_ARGUMENT', 'stateMachine: commands is empty')
  for (const tag of tags)
    if (typeof commands[tag] !== 'function')
      throw new DispatchError('INVALID_ARGUMENT', `stateMachine: command ${tag} is not a function`)
  for (const key of ['snapshot', 'restore'] as const)
    if (definition[key] !== undefined && typeof definition[key] !== 'function')
      throw new DispatchError('INVALID_ARGUMENT', `stateMachine: ${key} must be a function`)
  const machine: StateMachine<S, C> = {
    commands,
    tags,
    initial: () => definition.initial(),
    snapshot: (state) => (definition.snapshot ? definition.snapshot(state) : state),
    restore: (snapshot) => (definition.restore ? definition.restore(snapshot) : (snapshot as S)),
    client: (control) => {
      const missing = tags.filter((t) => !control.tags.includes(t))
      if (missing.length > 0)
        throw new DispatchError(
          'INVALID_ARGUMENT',
          `this dispatcher runs another machine (it lacks ${missing.join(', ')})`,
        )
      return {
        submit: (tag, args, options) =>
          control.submit(tag, args, options) as Promise<ResultOf<C, typeof tag>>,
        state: () => control.state() as S,
        onApplied: (handler) => control.onApplied(handler),
        applied: () => control.applied(),
        control,
      }
    },
  }
  return machine
}

/**
 * The `classOf` a semantic Order needs (`@consul/order-semantic`), from the commands' tags and
 * arguments: `rank(tag, args)` gives a command's class rank (commands of one rank commute).
 * It must be a pure function. Bytes that are no Dispatcher command get rank `otherwise`
 * (default 0) — the Dispatcher drops them at every replica, so where they fall changes nothing.
 */
export function classOfCommands(
  rank: (tag: string, args: unknown) => number,
  otherwise = 0,
): (command: Uint8Array) => number {
  if (typeof rank !== 'function')
    throw new DispatchError(
      'INVALID_ARGUMENT',
      'classOfCommands takes a function (tag, args) => rank',
    )
  return (command) => {
    const decoded = decodeCommand(command)
    return typeof decoded === 'string' ? otherwise : rank(decoded.tag, decoded.args)
  }
}
