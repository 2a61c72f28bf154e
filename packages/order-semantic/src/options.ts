import { OrderError, type ResolvedOrderOptions, resolveOrderOptions } from '@consul/xkernel/order'

/**
 * The application's commutativity classes: a class rank (a non-negative integer) for each
 * command. Commands of the same rank commute with each other; commands of different ranks do
 * not. It must be a pure function of the command bytes — the same answer at every replica,
 * on every call, across restarts — because every replica computes it independently.
 *
 * Rank 0 is special: rank-0 commands are delivered early (see the README), so give rank 0 to
 * the class that is most frequent or most latency-sensitive.
 */
export type ClassOf = (command: Uint8Array) => number

export interface SemanticOrderOptions {
  /** The command's class rank (required). */
  readonly classOf: ClassOf
  /**
   * Send an empty acknowledgement this long after receiving a command when there is nothing
   * else to send, so its wave can complete (ms). Default 1.
   */
  readonly ackDelayMs?: number
  /** Most commands per Psync message. Default 256. */
  readonly maxBatch?: number
  /** Most command bytes per Psync message. Default 64 KiB. */
  readonly maxBatchBytes?: number
}

export interface ResolvedOptions extends ResolvedOrderOptions {
  readonly classOf: ClassOf
}

export function resolveOptions(options: SemanticOrderOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) {
    throw new OrderError(
      'INVALID_ARGUMENT',
      'semanticOrder() takes an options object with at least classOf, e.g. semanticOrder({ classOf: (c) => c[0] ?? 0 })',
    )
  }
  if (typeof options.classOf !== 'function') {
    throw new OrderError(
      'INVALID_ARGUMENT',
      `semanticOrder option classOf must be a function (command: Uint8Array) => class rank, got ${typeof options.classOf}`,
    )
  }
  return {
    classOf: options.classOf,
    ...resolveOrderOptions(options, (code, message) => new OrderError(code, message)),
  }
}

/**
 * The class rank of `command`, or a description of what is wrong with it: `classOf` threw,
 * or returned something that is not a non-negative safe integer.
 */
export function classRank(
  classOf: ClassOf,
  command: Uint8Array,
): { rank: number } | { problem: string; cause?: unknown } {
  let value: unknown
  try {
    value = classOf(command)
  } catch (cause) {
    return {
      problem: `classOf threw: ${cause instanceof Error ? cause.message : String(cause)}`,
      cause,
    }
  }
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    return {
      problem: `classOf returned ${typeof value === 'number' ? String(value) : typeof value}; a class rank is a non-negative integer`,
    }
  }
  return { rank: value }
}
