/**
 * The directory as a Dispatcher state machine: one replicated command, `run`, carrying one
 * or more Redis commands (several for `MULTI … EXEC`, applied as one atomic step) and the
 * submitter's clock reading.
 */

import { classOfCommands, defineCommands, stateMachine } from '@consul/dispatcher'
import type { Reply } from './resp.js'
import { Directory, type Entry, execute, READS } from './store.js'

export interface RunArgs {
  /** The commands, each as its words (name first). */
  readonly c: readonly Uint8Array[][]
  /** The submitter's clock (ms since the epoch) when it submitted them. */
  readonly t: number
}

const buf = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength)

export const commands = defineCommands({
  run: (d: Directory, a: RunArgs): Reply[] => {
    d.applied++
    // Copies: a stored value must not keep the whole delivered message alive.
    return a.c.map((words) =>
      execute(
        d,
        words.map((w) => Buffer.from(buf(w))),
        a.t,
      ),
    )
  },
})

type Stored =
  | [string, 0, Uint8Array, number | null]
  | [string, 1, [string, Uint8Array][], number | null]

/** The machine: snapshot and restore for checkpoints, state transfer and joins. */
export const directoryMachine = stateMachine({
  initial: () => new Directory(),
  commands,
  snapshot: (d: Directory) => {
    const keys: Stored[] = []
    for (const [k, e] of d.keys) {
      if (e.type === 'string') keys.push([k, 0, e.value, e.expireAt ?? null])
      else keys.push([k, 1, [...e.fields], e.expireAt ?? null])
    }
    return { clock: d.clock, applied: d.applied, keys }
  },
  restore: (x) => {
    const s = x as { clock: number; applied?: number; keys: Stored[] }
    const d = new Directory()
    d.clock = s.clock
    d.applied = s.applied ?? 0
    for (const [k, type, v, expireAt] of s.keys) {
      const e: Entry =
        type === 0
          ? { type: 'string', value: Buffer.from(v as Uint8Array), expireAt: expireAt ?? undefined }
          : {
              type: 'hash',
              fields: new Map((v as [string, Uint8Array][]).map(([f, b]) => [f, Buffer.from(b)])),
              expireAt: expireAt ?? undefined,
            }
      d.keys.set(k, e)
    }
    return d
  },
})

/** Whether every command of a `run` only reads: those commute (rank 0 in semantic order). */
export const readOnly = (c: readonly Uint8Array[][]) =>
  c.every((w) => READS.has(Buffer.from(buf(w[0]!)).toString('latin1').toUpperCase()))

/**
 * The classes for `@consul/order-semantic`: read-only commands are rank 0 (they commute with
 * each other, so they are delivered early), every write rank 1 (ordered after its wave).
 */
export const directoryClasses = classOfCommands((_tag, args) => {
  const c = (args as Partial<RunArgs> | undefined)?.c
  // Bytes that are no directory command get rank 1: they are dropped everywhere anyway.
  return Array.isArray(c) &&
    c.every((w) => Array.isArray(w) && w[0] instanceof Uint8Array) &&
    readOnly(c)
    ? 0
    : 1
}, 1)
