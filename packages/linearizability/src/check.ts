/**
 * `check(model, history)`: validates the history, splits it with the model's `partition`
 * (P-compositionality: a history is linearizable exactly when each independent part is) and
 * runs the search on each part under one deadline.
 */
import { realNow } from './adapters/clock.js'
import { LinearizabilityError } from './errors.js'
import { checkHistory, type Interval, show } from './history.js'
import type { Model, Operation, StepResult } from './model.js'
import { type Furthest, type SearchOp, type SearchProblem, search } from './search.js'

export interface CheckOptions {
  /**
   * Gives up after this long (over all partitions), with `result: 'unknown'` for the parts not
   * decided in time. Default: no limit.
   */
  readonly timeoutMs?: number
  /** The clock `timeoutMs` is measured on, in ms. Default: the process's monotonic clock. */
  readonly now?: () => number
}

/** `ok`: linearizable; `illegal`: not; `unknown`: the time ran out first. */
export type Verdict = 'ok' | 'illegal' | 'unknown'

export interface CheckResult<Input, Output> {
  /** `illegal` if any part is; else `unknown` if any part timed out; else `ok`. */
  readonly result: Verdict
  /** One per partition, in the order the model's `partition` gave them. */
  readonly partitions: readonly PartitionResult<Input, Output>[]
  /** The first illegal partition's. */
  readonly counterexample?: Counterexample<Input, Output>
  /** Operations in the history. */
  readonly operations: number
  readonly elapsedMs: number
}

export interface PartitionResult<Input, Output> {
  readonly result: Verdict
  /**
   * The part's operations that were searched: all of them but those with an unknown outcome
   * that change nothing whether they happened or not (a GET that timed out).
   */
  readonly operations: readonly Operation<Input, Output>[]
  /** How many of them have an unknown outcome. */
  readonly unknownOutcomes: number
  /**
   * When `ok`: an order that the model accepts and real time allows — every operation with a
   * known outcome, and those with an unknown one that took effect.
   */
  readonly linearization?: readonly Operation<Input, Output>[]
  readonly counterexample?: Counterexample<Input, Output>
  /** Model steps tried, and (linearized set, state) pairs memoised. */
  readonly steps: number
  readonly cached: number
}

/** Why a partition is not linearizable, from the furthest point the search reached. */
export interface Counterexample<Input, Output> {
  /** Index into `CheckResult.partitions`. */
  readonly partition: number
  /** The longest linearizable prefix found, in linearization order. */
  readonly prefix: readonly Operation<Input, Output>[]
  /** The model's state after it. */
  readonly state: string
  /** The operation that returned while it could not be linearized after that prefix. */
  readonly blocked: Operation<Input, Output>
  /** Why it could not: the model's reason. */
  readonly reason: string
  /** The other operations that could have come next, and why none led anywhere. */
  readonly tried: readonly {
    readonly operation: Operation<Input, Output>
    readonly reason: string
  }[]
  /** All of the above for humans. */
  readonly text: string
}

/** One part as the runner needs it: its operations (indices into the history) and search. */
export interface Plan<State> {
  readonly members: readonly number[]
  readonly problem: SearchProblem<State>
}

export interface Describer<State, Input, Output> {
  operation(operation: Operation<Input, Output>, known: boolean): string
  state(state: State): string
}

export function check<State, Input, Output>(
  model: Model<State, Input, Output>,
  history: readonly Operation<Input, Output>[],
  options: CheckOptions = {},
): CheckResult<Input, Output> {
  const clock = clockOf(options)
  const started = clock.now()
  checkModel(model)
  const validate = model.validate?.bind(model)
  const intervals = checkHistory(
    history,
    validate === undefined ? undefined : guarded('validate', validate),
  )
  if (model.stepUnknown === undefined) {
    const unknown = intervals.findIndex((interval) => !interval.known)
    if (unknown !== -1)
      throw new LinearizabilityError(
        'INVALID_MODEL',
        `operation #${unknown} has an unknown outcome but the model has no stepUnknown(state, input): give one (the state after the operation took effect), or give the operation's return time and output`,
      )
  }
  const key = guarded('key', model.key?.bind(model) ?? defaultKey)
  const describe = describerOf(model, key)
  const init = guarded('init', () => model.init())
  const readOnly =
    model.readOnly === undefined ? undefined : guarded('readOnly', model.readOnly.bind(model))
  const independent =
    model.independent === undefined
      ? undefined
      : guarded('independent', model.independent.bind(model))
  const overwrites =
    model.overwrites === undefined ? undefined : guarded('overwrites', model.overwrites.bind(model))
  const commandKey =
    model.commandKey === undefined ? undefined : guarded('commandKey', model.commandKey.bind(model))
  const isReadOnly = (index: number): boolean => {
    const known = intervals[index]!.known
    const operation = history[index]!
    return readOnly?.(operation.input, known ? operation.output : undefined, known) === true
  }
  const plans = partsOf(model, history).map((part): Plan<State> => {
    // An unknown outcome that changes nothing, happened or not, constrains nothing.
    const members = part.filter((index) => intervals[index]!.known || !isReadOnly(index))
    const ops: SearchOp[] = members.map((index) => ({
      ...intervals[index]!,
      greedy: false,
      eager: intervals[index]!.known && isReadOnly(index),
    }))
    const conflicts =
      independent === undefined
        ? undefined
        : (a: number, b: number) =>
            !independent(history[members[a]!]!.input, history[members[b]!]!.input)
    return {
      members,
      problem: {
        ops,
        init: init(),
        key,
        ...(conflicts === undefined ? {} : { conflicts }),
        ...(overwrites === undefined
          ? {}
          : {
              masks: (later: number, earlier: number) =>
                overwrites(history[members[later]!]!.input, history[members[earlier]!]!.input),
            }),
        ...(commandKey === undefined
          ? {}
          : { sameCommand: (op: number) => commandKey(history[members[op]!]!.input) }),
        step: (state, op) => {
          const index = members[op]!
          const operation = history[index]!
          return guardedStep(describe, operation, intervals[index]!.known, () =>
            intervals[index]!.known
              ? model.step(state, operation.input, operation.output as Output)
              : { ok: true, state: model.stepUnknown!(state, operation.input) },
          )
        },
      },
    }
  })
  return runPlans(history, intervals, plans, describe, clock, started)
}

/** Runs each part's search under one deadline and assembles the result. */
export function runPlans<State, Input, Output>(
  history: readonly Operation<Input, Output>[],
  intervals: readonly Interval[],
  plans: readonly Plan<State>[],
  describe: Describer<State, Input, Output>,
  clock: Clock,
  started: number,
): CheckResult<Input, Output> {
  const partitions: PartitionResult<Input, Output>[] = []
  let counterexample: Counterexample<Input, Output> | undefined
  for (const [partition, { members, problem }] of plans.entries()) {
    const operations = members.map((index) => history[index]!)
    const unknownOutcomes = members.filter((index) => !intervals[index]!.known).length
    if (clock.now() > clock.deadline(started)) {
      partitions.push({ result: 'unknown', operations, unknownOutcomes, steps: 0, cached: 0 })
      continue
    }
    const outcome = search(problem, clock.deadline(started), clock.now)
    const { steps, cached } = outcome
    if (outcome.result === 'ok') {
      const linearization = outcome.order.map((op) => history[members[op]!]!)
      partitions.push({ result: 'ok', operations, unknownOutcomes, linearization, steps, cached })
    } else if (outcome.result === 'unknown') {
      partitions.push({ result: 'unknown', operations, unknownOutcomes, steps, cached })
    } else {
      const found = explain(partition, plans.length, outcome.furthest, {
        history,
        intervals,
        members,
        problem,
        describe,
      })
      counterexample ??= found
      partitions.push({
        result: 'illegal',
        operations,
        unknownOutcomes,
        counterexample: found,
        steps,
        cached,
      })
    }
  }
  const result: Verdict = partitions.some((part) => part.result === 'illegal')
    ? 'illegal'
    : partitions.some((part) => part.result === 'unknown')
      ? 'unknown'
      : 'ok'
  return {
    result,
    partitions,
    ...(counterexample === undefined ? {} : { counterexample }),
    operations: history.length,
    elapsedMs: clock.now() - started,
  }
}

/** How many operations of the prefix the text shows (the last ones, nearest the failure). */
const PREFIX_LINES = 20

function explain<State, Input, Output>(
  partition: number,
  partitions: number,
  furthest: Furthest<State>,
  context: {
    history: readonly Operation<Input, Output>[]
    intervals: readonly Interval[]
    members: readonly number[]
    problem: SearchProblem<State>
    describe: Describer<State, Input, Output>
  },
): Counterexample<Input, Output> {
  const { history, intervals, members, problem, describe } = context
  const operationOf = (op: number) => history[members[op]!]!
  const line = (op: number): string => {
    const interval = intervals[members[op]!]!
    const end = interval.known ? String(interval.return) : '?'
    return `[t ${interval.call}–${end}] client ${operationOf(op).clientId}: ${describe.operation(operationOf(op), interval.known)}`
  }
  const why = (op: number): string => {
    const stepped = problem.step(furthest.state, op)
    if (stepped.ok) return 'it fits here, but every way on from it fails (or was already explored)'
    return stepped.reason ?? 'the model rejects it here'
  }
  const reason = why(furthest.blocked)
  const tried = furthest.candidates
    .filter((op) => op !== furthest.blocked)
    .map((op) => ({ operation: operationOf(op), reason: why(op), op }))
  const state = describe.state(furthest.state)
  const shown = furthest.order.slice(-PREFIX_LINES)
  const first = furthest.order.length - shown.length
  const text = [
    `Not linearizable${partitions > 1 ? ` (partition ${partition + 1} of ${partitions}: ` : ' ('}${members.length} operations).`,
    furthest.order.length === 0
      ? 'Not even the first operation can be linearized.'
      : `The longest linearizable prefix found has ${furthest.order.length} operation${furthest.order.length === 1 ? '' : 's'}${first > 0 ? `; its last ${shown.length}` : ''}:`,
    ...shown.map((op, index) => `  ${first + index + 1}. ${line(op)}`),
    `State after it: ${state}`,
    `This operation returned, but cannot be linearized next: ${line(furthest.blocked)}`,
    `  — ${reason}`,
    ...(tried.length === 0
      ? ['No other operation could take effect before it returned.']
      : [
          'Nor can any other operation pending then take effect first and let it fit:',
          ...tried.map(({ op, reason }) => `  ${line(op)} — ${reason}`),
        ]),
  ].join('\n')
  return {
    partition,
    prefix: furthest.order.map(operationOf),
    state,
    blocked: operationOf(furthest.blocked),
    reason,
    tried: tried.map(({ operation, reason }) => ({ operation, reason })),
    text,
  }
}

/** Calls the model, turning a throw into a `MODEL_FAILED` error that names the operation. */
export function guardedStep<State, Input, Output>(
  describe: Describer<State, Input, Output>,
  operation: Operation<Input, Output>,
  known: boolean,
  step: () => StepResult<State>,
): StepResult<State> {
  try {
    return step()
  } catch (error) {
    throw new LinearizabilityError(
      'MODEL_FAILED',
      `the model threw on ${describe.operation(operation, known)} (client ${operation.clientId}): ${error instanceof Error ? error.message : show(error)}`,
    )
  }
}

/** A model function whose throw becomes a `MODEL_FAILED` error naming the function. */
function guarded<Args extends unknown[], Result>(
  name: string,
  run: (...args: Args) => Result,
): (...args: Args) => Result {
  return (...args) => {
    try {
      return run(...args)
    } catch (error) {
      throw new LinearizabilityError(
        'MODEL_FAILED',
        `the model's ${name}() threw: ${error instanceof Error ? error.message : show(error)}`,
      )
    }
  }
}

export function describerOf<State, Input, Output>(
  model: Pick<Model<State, Input, Output>, 'describeOperation' | 'describeState'>,
  key: (state: State) => string,
): Describer<State, Input, Output> {
  // Describing is for humans: a describer that throws falls back on JSON, never on a crash.
  const attempt = (run: () => string | undefined, fallback: () => string): string => {
    try {
      return run() ?? fallback()
    } catch {
      return fallback()
    }
  }
  return {
    operation: (operation, known) =>
      attempt(
        () =>
          model.describeOperation?.(operation.input, known ? operation.output : undefined, known),
        () => `${show(operation.input)} → ${known ? show(operation.output) : '?'}`,
      ),
    state: (state) =>
      attempt(
        () => model.describeState?.(state),
        () => key(state),
      ),
  }
}

function defaultKey(state: unknown): string {
  return show(state)
}

function checkModel(model: unknown): void {
  const m = model as Partial<Record<string, unknown>> | null
  if (typeof m !== 'object' || m === null)
    throw new LinearizabilityError(
      'INVALID_MODEL',
      'the model must be an object with init() and step()',
    )
  for (const name of ['init', 'step'])
    if (typeof m[name] !== 'function')
      throw new LinearizabilityError('INVALID_MODEL', `the model has no ${name}() function`)
  for (const name of [
    'stepUnknown',
    'readOnly',
    'independent',
    'overwrites',
    'commandKey',
    'partition',
    'key',
    'validate',
    'describeOperation',
    'describeState',
  ])
    if (m[name] !== undefined && typeof m[name] !== 'function')
      throw new LinearizabilityError('INVALID_MODEL', `the model's ${name} must be a function`)
}

/** The model's parts as indices into the history; every operation in exactly one part. */
function partsOf<State, Input, Output>(
  model: Model<State, Input, Output>,
  history: readonly Operation<Input, Output>[],
): number[][] {
  if (model.partition === undefined) return [history.map((_, index) => index)]
  const indexOf = new Map<Operation<Input, Output>, number>(
    history.map((operation, index) => [operation, index]),
  )
  const placed = new Uint8Array(history.length)
  const parts = guarded('partition', model.partition.bind(model))(history)
  if (!Array.isArray(parts as unknown) || !parts.every((part) => Array.isArray(part as unknown)))
    throw new LinearizabilityError(
      'INVALID_MODEL',
      "the model's partition() must return an array of arrays of operations",
    )
  const result = parts.map((part) =>
    Array.from(part, (operation) => {
      const index = indexOf.get(operation)
      if (index === undefined)
        throw new LinearizabilityError(
          'INVALID_MODEL',
          "the model's partition() returned an operation that is not in the history (return the history's own objects, not copies)",
        )
      if (placed[index] === 1)
        throw new LinearizabilityError(
          'INVALID_MODEL',
          `the model's partition() put operation #${index} in two parts`,
        )
      placed[index] = 1
      return index
    }),
  )
  const missing = placed.indexOf(0)
  if (missing !== -1)
    throw new LinearizabilityError(
      'INVALID_MODEL',
      `the model's partition() left out operation #${missing}: every operation must be in one part`,
    )
  return result.filter((part) => part.length > 0)
}

export interface Clock {
  readonly now: () => number
  deadline(started: number): number
}

export function clockOf(options: CheckOptions): Clock {
  if (typeof options !== 'object' || options === null)
    throw new LinearizabilityError('INVALID_OPTIONS', 'options must be an object')
  const { timeoutMs, now = realNow } = options
  if (
    timeoutMs !== undefined &&
    (typeof timeoutMs !== 'number' || Number.isNaN(timeoutMs) || timeoutMs < 0)
  )
    throw new LinearizabilityError(
      'INVALID_OPTIONS',
      `timeoutMs must be a number of milliseconds ≥ 0 (got ${show(timeoutMs)})`,
    )
  if (typeof now !== 'function')
    throw new LinearizabilityError(
      'INVALID_OPTIONS',
      'now must be a function returning milliseconds',
    )
  const limit = timeoutMs ?? Number.POSITIVE_INFINITY
  return { now, deadline: (started) => started + limit }
}
