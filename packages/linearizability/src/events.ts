/**
 * Histories written as a sequence of events (porcupine's second form): a call, later its
 * return. The position in the sequence is the time, so the order must be the real-time order
 * in which the events happened.
 */
import { type CheckOptions, type CheckResult, check } from './check.js'
import { LinearizabilityError } from './errors.js'
import { show } from './history.js'
import type { ClientId, Model, Operation } from './model.js'

/**
 * A return matches the call with the same `id`, or without ids the open call of the same
 * client (one open call per client). A call that never returns has an unknown outcome.
 */
export type HistoryEvent<Input, Output> =
  | {
      readonly kind: 'call'
      readonly clientId: ClientId
      readonly input: Input
      readonly id?: string | number
    }
  | {
      readonly kind: 'return'
      readonly clientId: ClientId
      readonly output: Output
      readonly id?: string | number
    }

export function operationsFromEvents<Input, Output>(
  events: readonly HistoryEvent<Input, Output>[],
): Operation<Input, Output>[] {
  if (!Array.isArray(events)) throw invalid(`the events must be an array (got ${show(events)})`)
  interface Open {
    readonly clientId: ClientId
    readonly input: Input
    readonly call: number
    return: number | undefined
    output?: Output
  }
  const operations: Open[] = []
  const byId = new Map<string | number, Open>()
  const byClient = new Map<ClientId, Open>()
  events.forEach((event, time) => {
    if (typeof event !== 'object' || event === null)
      throw invalid(`event #${time} is not an object`)
    const { kind, clientId, id } = event
    if (typeof clientId !== 'string' && typeof clientId !== 'number')
      throw invalid(`event #${time} has no clientId (a string or number)`)
    if (kind === 'call') {
      const open: Open = { clientId, input: event.input, call: time, return: undefined }
      if (id !== undefined) {
        if (byId.has(id))
          throw invalid(`event #${time}: a call with id ${show(id)} is already open`)
        byId.set(id, open)
      } else {
        if (byClient.has(clientId))
          throw invalid(
            `event #${time}: client ${clientId} calls again while its earlier call is open; give the events ids to pair them`,
          )
        byClient.set(clientId, open)
      }
      operations.push(open)
    } else if (kind === 'return') {
      const open = id !== undefined ? byId.get(id) : byClient.get(clientId)
      if (open === undefined)
        throw invalid(
          `event #${time}: a return ${id !== undefined ? `with id ${show(id)}` : `by client ${clientId}`} without an open call`,
        )
      if (id !== undefined) byId.delete(id)
      else byClient.delete(clientId)
      open.return = time
      open.output = event.output
    } else {
      throw invalid(`event #${time}: kind must be 'call' or 'return' (got ${show(kind)})`)
    }
  })
  return operations
}

/** `check` on a history given as events. */
export function checkEvents<State, Input, Output>(
  model: Model<State, Input, Output>,
  events: readonly HistoryEvent<Input, Output>[],
  options: CheckOptions = {},
): CheckResult<Input, Output> {
  return check(model, operationsFromEvents(events), options)
}

function invalid(message: string): LinearizabilityError {
  return new LinearizabilityError('INVALID_HISTORY', message)
}
