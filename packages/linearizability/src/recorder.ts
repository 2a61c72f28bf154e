/**
 * Records a history while a test runs: `invoke` when a client sends an operation, then, on its
 * handle, `ok` with what the client saw, `fail` when it definitely did not take effect, or
 * `unknown` (or nothing at all) when the client cannot tell.
 *
 * Soundness rests on the intervals: the call is stamped before the request leaves and the
 * return after the reply arrives, so each recorded interval contains the real one, and a wider
 * interval only allows more orders — a correct store is never reported illegal because of the
 * recorder.
 */
import { LinearizabilityError } from './errors.js'
import type { ClientId, Operation } from './model.js'

export interface RecorderOptions {
  /**
   * The clock of calls and returns, common to every client (`() => performance.now()`).
   * Default: a counter bumped at each event — the order in which this process saw them, a
   * real-time order as long as every client runs in this process.
   */
  readonly now?: () => number
}

export interface PendingOperation<Output> {
  /** The client saw `output` (for the key-value model, an error reply as `{ error }`). */
  ok(output: Output): void
  /**
   * The operation definitely did not take effect (an error reply that guarantees it was not
   * applied, e.g. -CLUSTERDOWN before execution, or a request never sent): it is left out of
   * the history. When in doubt, use `unknown()`: a wrong `fail()` can make a correct store
   * look illegal.
   */
  fail(): void
  /**
   * The outcome will never be known (a timeout, a dropped connection): the operation may have
   * taken effect at any time after its call, or never. A handle never settled counts as this.
   */
  unknown(): void
}

export interface Recorder<Input, Output> {
  invoke(clientId: ClientId, input: Input): PendingOperation<Output>
  /**
   * The operations so far, in the order they were invoked, without the failed ones; those
   * still pending have an unknown outcome. A snapshot: recording goes on.
   */
  history(): Operation<Input, Output>[]
}

export function createRecorder<Input, Output>(
  options: RecorderOptions = {},
): Recorder<Input, Output> {
  if (typeof options !== 'object' || options === null)
    throw new LinearizabilityError('INVALID_OPTIONS', 'options must be an object')
  if (options.now !== undefined && typeof options.now !== 'function')
    throw new LinearizabilityError('INVALID_OPTIONS', 'now must be a function returning a time')
  let counter = 0
  const now = options.now ?? (() => counter++)
  interface Entry {
    readonly clientId: ClientId
    readonly input: Input
    readonly call: number
    return: number | undefined
    output?: Output
    settled: 'ok' | 'fail' | 'unknown' | undefined
  }
  const entries: Entry[] = []
  return {
    invoke(clientId, input) {
      const entry: Entry = { clientId, input, call: now(), return: undefined, settled: undefined }
      entries.push(entry)
      const settle = (how: 'ok' | 'fail' | 'unknown'): void => {
        if (entry.settled !== undefined)
          throw new LinearizabilityError(
            'INVALID_HISTORY',
            `client ${clientId}'s operation was already settled (${entry.settled}), now ${how}: settle each operation once`,
          )
        entry.settled = how
      }
      return {
        ok(output) {
          settle('ok')
          entry.return = now()
          entry.output = output
        },
        fail() {
          settle('fail')
        },
        unknown() {
          settle('unknown')
        },
      }
    },
    history: () =>
      entries.flatMap(
        ({ clientId, input, call, return: ret, output, settled }): Operation<Input, Output>[] =>
          settled === 'fail'
            ? []
            : ret === undefined
              ? [{ clientId, input, call, return: undefined }]
              : [{ clientId, input, call, return: ret, output: output as Output }],
      ),
  }
}
