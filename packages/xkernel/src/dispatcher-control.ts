/**
 * The Dispatcher's control interface (`@consul/dispatcher` provides it), here so that
 * Recovery and applications depend on the framework only. The Dispatcher turns the Order's
 * byte commands into an application's typed commands: each submitted command carries a tag
 * and its arguments; every replica applies each delivered command to its state machine in the
 * Order's order, and the submitter's promise settles with the handler's result.
 *
 * This interface is untyped (`unknown` arguments and results); `@consul/dispatcher`'s
 * `stateMachine(…).client(control)` gives the typed view of one machine.
 */
import { capability } from './capability.js'
import type { OrderPosition, SubmitOptions } from './order-spec.js'
import type { NodeId } from './transport.js'

/** What a handler's throw becomes — the same at every replica (no stack, no identity). */
export interface CommandFailure {
  /** The thrown error's `name` (`'Error'` for a thrown non-error). */
  readonly name: string
  readonly message: string
  /** The thrown error's `code`, when it is a string. */
  readonly code?: string
}

export type CommandOutcome =
  | { readonly ok: true; readonly result: unknown }
  | { readonly ok: false; readonly failure: CommandFailure }

/** One command as every replica applied it. */
export interface AppliedCommand {
  /** The Order's command id (`<psync message id>/<index>`): unique in the group. */
  readonly id: string
  readonly sender: NodeId
  readonly tag: string
  readonly args: unknown
  readonly outcome: CommandOutcome
  /** Applied again while a restart replays the log. */
  readonly restored: boolean
  /** The Order's position right after it. */
  readonly position: OrderPosition
}

export interface DispatcherControl {
  /** The machine's command tags, sorted. */
  readonly tags: readonly string[]
  /**
   * Submits command `tag` with `args` through the Order and resolves with the handler's
   * result once this replica has applied it and the Order's `level` holds (`'safe'` by
   * default). Rejects with the handler's failure (`DispatchError('HANDLER_FAILED')`, the same
   * at every replica), with `UNKNOWN_COMMAND` for a tag the machine does not have,
   * `INVALID_ARGUMENT` for arguments msgpack cannot encode, or with the Order's own error
   * (`NO_PRIMARY`, `CLOSED`, …) — then the command may or may not have been applied.
   */
  submit(tag: string, args: unknown, options?: SubmitOptions): Promise<unknown>
  /** Calls `handler` after every applied command, in order (replayed ones included). */
  onApplied(handler: (command: AppliedCommand) => void): () => void
  /**
   * The pull style: the commands applied from now on, in order. It buffers what it has not
   * yielded yet (unbounded: read it, or `return()` it).
   */
  applied(): AsyncIterableIterator<AppliedCommand>
  /** The machine's current state (read it; do not change it outside a handler). */
  state(): unknown
  /** The machine's state as bytes, and how many commands produced it (for a checkpoint). */
  snapshot(): Uint8Array
  /** Replaces the state with a `snapshot()` (a checkpoint); a malformed one throws `INVALID_ARGUMENT`. */
  restore(snapshot: Uint8Array): void
}

export const DISPATCHER = capability<'dispatcher', DispatcherControl>('dispatcher')
