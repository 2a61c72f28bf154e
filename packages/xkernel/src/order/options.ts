/**
 * The options every Order built on these blocks shares — `ackDelayMs`, `maxBatch`,
 * `maxBatchBytes` — with their defaults, and the check an Order applies to its other numeric
 * options. A bad value throws the Order's own `INVALID_ARGUMENT` error at the factory, so a
 * misconfigured stack fails before it starts.
 */
/**
 * The options checks only ever report `INVALID_ARGUMENT`, so any factory that builds that
 * code will do (an `OrderErrorFactory`, or a narrower one).
 */
type OptionErrorFactory = (code: 'INVALID_ARGUMENT', message: string) => Error

/** The options every Order built on these blocks shares (all optional). */
export interface OrderOptions {
  /** Empty-acknowledgement delay after receiving a command (ms, ≥ 0). Default 1. */
  readonly ackDelayMs?: number
  /** Most commands per Psync message (integer ≥ 1). Default 256. */
  readonly maxBatch?: number
  /** Most command bytes per Psync message (integer ≥ 1). Default 64 KiB. */
  readonly maxBatchBytes?: number
}

export interface ResolvedOrderOptions {
  readonly ackDelayMs: number
  readonly maxBatch: number
  readonly maxBatchBytes: number
}

/** How one numeric option is checked. */
export interface NumberOptionSpec {
  readonly fallback: number
  readonly min: number
  readonly integer?: boolean
}

/**
 * `options[name]` (or `spec.fallback` when absent), checked to be a finite number ≥
 * `spec.min` (and an integer if `spec.integer`); otherwise throws
 * `error('INVALID_ARGUMENT', '<label> <name> must be …, got …')`.
 */
export function numberOption<K extends string>(
  options: { readonly [key in K]?: unknown },
  name: K,
  spec: NumberOptionSpec,
  error: OptionErrorFactory,
  label = 'order option',
): number {
  const value = options[name] ?? spec.fallback
  const integer = spec.integer === true
  if (
    typeof value !== 'number' ||
    !Number.isFinite(value) ||
    value < spec.min ||
    (integer && !Number.isInteger(value))
  ) {
    throw error(
      'INVALID_ARGUMENT',
      `${label} ${name} must be ${integer ? 'an integer' : 'a number'} >= ${spec.min}, got ${String(value)}`,
    )
  }
  return value
}

/**
 * `ackDelayMs` (default 1, ≥ 0), `maxBatch` (default 256, integer ≥ 1) and `maxBatchBytes`
 * (default 65,536, integer ≥ 1), checked in that order; the first bad one throws
 * `error('INVALID_ARGUMENT', …)`. `label` starts the message (default `'order option'`).
 */
export function resolveOrderOptions(
  options: OrderOptions,
  error: OptionErrorFactory,
  label = 'order option',
): ResolvedOrderOptions {
  return {
    ackDelayMs: numberOption(options, 'ackDelayMs', { fallback: 1, min: 0 }, error, label),
    maxBatch: numberOption(
      options,
      'maxBatch',
      { fallback: 256, min: 1, integer: true },
      error,
      label,
    ),
    maxBatchBytes: numberOption(
      options,
      'maxBatchBytes',
      { fallback: 64 * 1024, min: 1, integer: true },
      error,
      label,
    ),
  }
}
