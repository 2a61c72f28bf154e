/**
 * @packageDocumentation
 * `@consul/dispatcher` — typed application commands over any Order. An application is a
 * state machine: an initial state and named commands, each a synchronous, deterministic
 * handler `(state, args) → result`. `submit('set', args)` tags the command, encodes it with
 * msgpack and hands it to the Order; every replica applies every delivered command in the
 * Order's order, and the submitter's promise resolves with its handler's result once its own
 * command is applied here and the Order's level holds (`'safe'` unless asked otherwise).
 * Provides `DISPATCHER` (`DispatcherControl`), requires `ORDER`.
 *
 * @example
 * ```ts
 * import { defineCommands, dispatcher, stateMachine } from '@consul/dispatcher'
 * import { DISPATCHER, stack } from '@consul/xkernel'
 *
 * const kv = stateMachine({
 *   initial: () => new Map<string, string>(),
 *   commands: defineCommands({
 *     set: (s: Map<string, string>, a: { key: string; value: string }) => {
 *       const old = s.get(a.key)
 *       s.set(a.key, a.value)
 *       return old
 *     },
 *     del: (s: Map<string, string>, a: { key: string }) => s.delete(a.key),
 *   }),
 * })
 * const host = await stack().use(psync()).use(divider()).use(totalOrder()).use(dispatcher({ machine: kv })).start({ transport, storage })
 * const group = await host.open({ port: 'kv', members: ['a', 'b', 'c'] })
 * const client = kv.client(group.get(DISPATCHER))
 * const old = await client.submit('set', { key: 'x', value: '1' }) // string | undefined
 * ```
 */
import { DISPATCHER, defineProtocol, maxGauges, ORDER } from '@consul/xkernel'
import { DispatchError } from './errors.js'
import type { Commands, StateMachine } from './machine.js'
import { DispatcherSession } from './session.js'

export type {
  AppliedCommand,
  CommandFailure,
  CommandOutcome,
  DispatcherControl,
} from '@consul/xkernel'
export { DISPATCHER } from '@consul/xkernel'
export { decodeCommand, encodeCommand, type WireCommand } from './codec.js'
export { DispatchError, type DispatchErrorCode } from './errors.js'
export {
  type ArgsOf,
  type Commands,
  classOfCommands,
  defineCommands,
  type Handler,
  type ResultOf,
  type StateMachine,
  type StateMachineDefinition,
  stateMachine,
  type TypedDispatcher,
} from './machine.js'
export { failureOf } from './session.js'

export interface DispatcherOptions<S> {
  /** The application: `stateMachine({ initial, commands, snapshot?, restore? })`. */
  // biome-ignore lint/suspicious/noExplicitAny: any machine's commands
  readonly machine: StateMachine<S, Commands<any>>
}

/**
 * The Dispatcher factory: every group opened on the stack runs `machine` (one state per
 * group). A missing or malformed machine throws `DispatchError('INVALID_ARGUMENT')`.
 */
export function dispatcher<S>(options: DispatcherOptions<S>) {
  const machine = options?.machine
  if (
    typeof machine !== 'object' ||
    machine === null ||
    typeof machine.initial !== 'function' ||
    !Array.isArray(machine.tags)
  )
    throw new DispatchError(
      'INVALID_ARGUMENT',
      'dispatcher({ machine }) takes a machine made by stateMachine({ initial, commands })',
    )
  return defineProtocol({
    name: 'dispatcher',
    requires: [ORDER],
    provides: [DISPATCHER],
    raises: ['dispatcher.dropped'],
    observes: ['recovery.started', 'recovery.finished'],
    create: () => {
      const sessions = new Set<DispatcherSession<S>>()
      return {
        open(ctx) {
          const session = new DispatcherSession<S>(ctx, machine)
          sessions.add(session)
          return {
            controls: { dispatcher: session.control },
            checkpoint: () => session.control.snapshot(),
            restore: (state) => session.control.restore(state),
            // A join: the application's state goes on into the next configuration as it is.
            carry: () => session.control.snapshot(),
            close: () => {
              sessions.delete(session)
              session.close()
            },
          }
        },
        stats: () => maxGauges(sessions),
      }
    },
  })
}
