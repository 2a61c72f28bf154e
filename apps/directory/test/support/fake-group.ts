/**
 * A stand-in for a group's Dispatcher: it applies `run` commands to a local `Directory`
 * after a delay the test controls, and can be told to fail submits the way the real stack
 * does (RECOVERING, NO_PRIMARY before sending, an unknown outcome).
 */
import type { DispatcherControl } from '@consul/xkernel'
import { newCounters, type ReplicaStatus, type ServerContext } from '../../src/connection.js'
import type { Reply } from '../../src/resp.js'
import { Directory, execute } from '../../src/store.js'

export interface FakeGroup {
  readonly directory: Directory
  readonly control: DispatcherControl
  /** Submits not applied yet, oldest first. */
  readonly queued: Array<{ args: { c: Uint8Array[][]; t: number }; resolve(): void }>
  /** Apply submits at once (default) or hold them until `release()`. */
  hold: boolean
  /** Make the next submits fail with this error (until set to undefined). */
  failWith: (Error & { code: string }) | undefined
  /** Applies the queued submits (all, or the first n) in order. */
  release(n?: number): void
  recovery: string
}

export function fakeGroup(): FakeGroup {
  const directory = new Directory()
  const queued: FakeGroup['queued'] = []
  const g: FakeGroup = {
    directory,
    queued,
    hold: false,
    failWith: undefined,
    recovery: 'active',
    release(n = queued.length) {
      for (const q of queued.splice(0, n)) q.resolve()
    },
    control: {
      tags: ['run'],
      submit(_tag, raw) {
        if (g.failWith !== undefined) return Promise.reject(g.failWith)
        const args = raw as { c: Uint8Array[][]; t: number }
        return new Promise<unknown>((resolve) => {
          const apply = () => {
            directory.applied++
            resolve(
              args.c.map((w) =>
                execute(
                  directory,
                  w.map((b) => Buffer.from(b)),
                  args.t,
                ),
              ) as Reply[],
            )
          }
          if (g.hold) queued.push({ args, resolve: apply })
          else queueMicrotask(apply)
        })
      },
      onApplied: () => () => {},
      applied: () => {
        throw new Error('not in the fake')
      },
      state: () => directory,
      snapshot: () => new Uint8Array(),
      restore: () => {},
    },
  }
  return g
}

export const codedError = (code: string, message: string, notApplied = false) =>
  Object.assign(new Error(message), { code, notApplied })

export function fakeContext(
  g: FakeGroup,
  options: Partial<
    Pick<ServerContext, 'linearizableReads' | 'password' | 'maxPending' | 'writeTimeoutMs'>
  > = {},
): ServerContext {
  let ids = 0
  return {
    dispatcher: () => g.control,
    status: (): ReplicaStatus => ({
      self: 'a',
      stack: 'strong',
      order: 'total',
      recovery: g.recovery,
      view: { id: 1, configuration: 0, members: ['a', 'b', 'c'] },
      applied: g.directory.applied,
    }),
    linearizableReads: options.linearizableReads ?? false,
    password: options.password,
    maxPending: options.maxPending ?? 4096,
    writeTimeoutMs: options.writeTimeoutMs ?? 0,
    parserLimits: {},
    counters: newCounters(),
    now: () => 1_000_000,
    nextId: () => ++ids,
    connections: new Set(),
  }
}
