import type { NodeId } from '@consul/xkernel'
import { OrderError, type ResolvedOrderOptions, resolveOrderOptions } from '@consul/xkernel/order'
import { type Access, accessOf } from './keys.js'
import { WaveQueue } from './wave-queue.js'

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

/**
 * What a command touches, for `keysOf`: the keys it reads or writes and whether it writes
 * (any of them), or `'all'` — it conflicts with every command (a flush, a scan of every key,
 * a command whose keys cannot be told from its bytes). Two commands **conflict** (do not
 * commute) iff either is `'all'`, or they share a key and at least one of them writes. A
 * command with no keys (`{ keys: [], write }`) commutes with everything but `'all'`.
 */
export type CommandKeys = { readonly keys: readonly string[]; readonly write: boolean } | 'all'

/**
 * The application's commutativity by keys: what `command` touches. Like `classOf`, a pure
 * function of the command bytes — every replica calls it on its own, also when replaying
 * after a restart.
 */
export type KeysOf = (command: Uint8Array) => CommandKeys

/**
 * Exactly one of `classOf` (commutativity classes, rank 0 delivered early) and `keysOf`
 * (commands on different keys commute; any command may go early) says what commutes.
 */
export interface SemanticOrderOptions {
  /** The command's class rank. */
  readonly classOf?: ClassOf
  /** What the command touches (instead of `classOf`). */
  readonly keysOf?: KeysOf
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
  /** Set in the class mode. */
  readonly classOf: ClassOf | undefined
  /** Set in the key mode. */
  readonly keysOf: KeysOf | undefined
  /**
   * The delivery rule's queue, given the conversation's members in the key mode. Not an
   * option: the seam through which the package's tests run a broken rule past the checkers.
   */
  readonly queue: (senders: readonly NodeId[] | undefined) => WaveQueue
}

export function resolveOptions(options: SemanticOrderOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) {
    throw new OrderError(
      'INVALID_ARGUMENT',
      'semanticOrder() takes an options object with classOf or keysOf, e.g. semanticOrder({ classOf: (c) => c[0] ?? 0 })',
    )
  }
  const { classOf, keysOf } = options
  if (classOf !== undefined && keysOf !== undefined) {
    throw new OrderError(
      'INVALID_ARGUMENT',
      'semanticOrder takes classOf or keysOf, not both: choose classes (rank 0 early) or keys (different keys commute)',
    )
  }
  if (keysOf !== undefined) {
    if (typeof keysOf !== 'function') {
      throw new OrderError(
        'INVALID_ARGUMENT',
        `semanticOrder option keysOf must be a function (command: Uint8Array) => { keys, write } | 'all', got ${typeof keysOf}`,
      )
    }
  } else if (typeof classOf !== 'function') {
    throw new OrderError(
      'INVALID_ARGUMENT',
      `semanticOrder option classOf must be a function (command: Uint8Array) => class rank, got ${typeof classOf}`,
    )
  }
  return {
    classOf: keysOf === undefined ? (classOf as ClassOf) : undefined,
    keysOf: keysOf as KeysOf | undefined,
    queue: (senders) => new WaveQueue(senders === undefined ? {} : { senders }),
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

/**
 * What `command` touches by `keysOf`, or a description of what is wrong: `keysOf` threw, or
 * returned something that is neither `'all'` nor `{ keys: string[], write: boolean }`.
 */
export function commandAccess(
  keysOf: KeysOf,
  command: Uint8Array,
): { access: Access } | { problem: string; cause?: unknown } {
  let value: unknown
  try {
    value = keysOf(command)
  } catch (cause) {
    return {
      problem: `keysOf threw: ${cause instanceof Error ? cause.message : String(cause)}`,
      cause,
    }
  }
  const access = accessOf(value)
  if (access === undefined) {
    return {
      problem: `keysOf returned ${describe(value)}; it returns 'all' or { keys: string[], write: boolean }`,
    }
  }
  return { access }
}

function describe(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? typeof value
  try {
    return JSON.stringify(value).slice(0, 80)
  } catch {
    return 'an object'
  }
}
