/**
 * What the checker is given: a sequential specification (`Model`) and a history of
 * operations with their real-time intervals (`Operation`).
 *
 * A history is linearizable when every operation can be given one point inside its interval
 * such that applying the operations in the order of their points, one at a time, to the
 * model reproduces every output that a client saw. An operation whose outcome is unknown (a
 * timeout, a dropped connection) may take effect at any point after its call, or never.
 */

/** Who issued an operation: only used to describe counterexamples and for per-client rules. */
export type ClientId = string | number

/**
 * One operation of a history.
 *
 * Invariant: `call <= return`. The operation `a` precedes `b` in real time when
 * `a.return < b.call`, strictly: operations that share an instant are concurrent.
 */
export interface Operation<Input, Output> {
  readonly clientId: ClientId
  readonly input: Input
  /** When the client issued it (any clock common to all clients: ms, ns, a logical counter). */
  readonly call: number
  /**
   * When the client saw the outcome, or `undefined` / `Infinity` when it never did (a timeout,
   * a dropped connection): the operation may then have taken effect at any time after its
   * call, or never, and its `output` is ignored.
   */
  readonly return: number | undefined
  /** What the client saw; ignored when the outcome is unknown. */
  readonly output?: Output
}

/** The outcome of applying one operation to a state. */
export type StepResult<State> =
  | { readonly ok: true; readonly state: State }
  /** `reason` (optional) says why, in the counterexample: "GET x returned "2", the value is "1"". */
  | { readonly ok: false; readonly reason?: string }

/**
 * A sequential specification. Models are deterministic: one state, one input and one output
 * give at most one next state.
 */
export interface Model<State, Input, Output> {
  /** The state before any operation. */
  init(): State
  /**
   * Applies an operation whose output the client saw: `ok: false` when the model could not
   * have produced `output` from `state`. Must not mutate `state` (return a new one).
   */
  step(state: State, input: Input, output: Output): StepResult<State>
  /**
   * The state after an operation whose outcome is unknown took effect (whatever it returned).
   * Required only when the history has unknown outcomes.
   */
  stepUnknown?(state: State, input: Input): State
  /**
   * True when the operation never changes the state: with a known outcome, wherever `step`
   * accepts it with this `output` (a GET; a SET NX that returned nil); with an unknown one
   * (`known` false), whatever happened (a GET that timed out). Optional, for speed: the search
   * takes such an operation as soon as it fits instead of branching on it, and leaves unknown
   * ones out altogether. A wrong `true` can make a linearizable history look illegal.
   */
  readOnly?(input: Input, output: Output | undefined, known: boolean): boolean
  /**
   * True only when the two operations commute: they touch nothing in common, so from any state
   * either order leaves the same state, and each fits (with its output) in one order exactly
   * when it does in the other — two commands on different keys. Optional, for speed with
   * unknown outcomes (an unknown outcome is then tried only next to an operation it does not
   * commute with). A wrong `true` can make a linearizable history look illegal.
   */
  independent?(a: Input, b: Input): boolean
  /**
   * True only when `later` right after `earlier` leaves the same state as `later` alone, from
   * any state, and `later` returns the same either way (SET x after INCR x): an unknown
   * `earlier` followed by it need not have happened. Optional, for speed with unknown outcomes
   * (used with `independent`). A wrong `true` can make a linearizable history look illegal.
   */
  overwrites?(later: Input, earlier: Input): boolean
  /**
   * A string equal for two inputs only when they are the same command (JSON of the input, when
   * inputs are plain data). Optional, for speed with unknown outcomes (used with
   * `independent`): unknown outcomes of one command are interchangeable.
   */
  commandKey?(input: Input): string
  /**
   * Splits the history into independent sub-histories (P-compositionality: the whole is
   * linearizable when each part is), e.g. one per key. The parts must contain the history's
   * own operation objects. Without it the history is checked as one part.
   */
  partition?(
    history: readonly Operation<Input, Output>[],
  ): readonly (readonly Operation<Input, Output>[])[]
  /**
   * A string that is equal for two states exactly when they are equal: the memoisation key.
   * Defaults to `JSON.stringify(state)`.
   */
  key?(state: State): string
  /**
   * Checks one operation before the search starts: a message for a malformed one (it is
   * thrown as `INVALID_HISTORY`), `undefined` for a good one.
   */
  validate?(operation: Operation<Input, Output>): string | undefined
  /** One operation for humans: `SET x "1" → OK`. `known` is false for an unknown outcome. */
  describeOperation?(input: Input, output: Output | undefined, known: boolean): string
  /** One state for humans. Defaults to `key(state)`. */
  describeState?(state: State): string
}
