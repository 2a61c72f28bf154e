import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { StorageError } from '@consul/xkernel'
import { expect } from 'vitest'

/** Temp directories made by a test file; `removeTempDirs()` in afterAll/afterEach. */
const made: string[] = []

export function tempDir(label = 'store'): string {
  const dir = mkdtempSync(join(tmpdir(), `consul-lmdb-${label}-`))
  made.push(dir)
  return dir
}

export function removeTempDirs(): void {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true })
}

export const text = (s: string) => new TextEncoder().encode(s)
export const str = (b: Uint8Array | undefined) =>
  b === undefined ? undefined : new TextDecoder().decode(b)

/** The error `fn` throws (or rejects with); fails the test when there is none. */
export async function caught(fn: () => unknown): Promise<unknown> {
  try {
    await fn()
  } catch (error) {
    return error
  }
  expect.fail('expected an error')
}

export async function expectStorageError(
  fn: () => unknown,
  code: string,
  message?: RegExp,
): Promise<StorageError> {
  const error = await caught(fn)
  expect(error).toBeInstanceOf(StorageError)
  expect((error as StorageError).code).toBe(code)
  if (message !== undefined) expect((error as StorageError).message).toMatch(message)
  return error as StorageError
}

/** Lets a macrotask pass, so LMDB commits what the previous turn wrote. */
export const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve))

/** The lines a child process prints, as they come; `all()` waits for the end of its output. */
export function lines(child: ChildProcess): AsyncIterable<string> & { all(): Promise<string[]> } {
  let buffered = ''
  const queue: string[] = []
  let wake: (() => void) | undefined
  let ended = false
  child.stdout!.setEncoding('utf8')
  child.stdout!.on('data', (chunk: string) => {
    buffered += chunk
    let nl = buffered.indexOf('\n')
    while (nl !== -1) {
      queue.push(buffered.slice(0, nl))
      buffered = buffered.slice(nl + 1)
      nl = buffered.indexOf('\n')
    }
    wake?.()
  })
  child.stdout!.on('end', () => {
    ended = true
    wake?.()
  })
  const iterable = {
    async *[Symbol.asyncIterator]() {
      while (true) {
        if (queue.length > 0) yield queue.shift()!
        else if (ended) return
        else await new Promise<void>((resolve) => (wake = resolve))
      }
    },
    async all() {
      const out: string[] = []
      for await (const line of iterable) out.push(line)
      return out
    },
  }
  return iterable
}

export const exited = (child: ChildProcess) =>
  child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise<void>((resolve) => child.once('exit', () => resolve()))
