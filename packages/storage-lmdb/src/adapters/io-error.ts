/**
 * How the adapter reports a store it cannot open or keep using: `StorageError('IO')` whose
 * message names the path, the problem, and what to do about it.
 */
import { StorageError } from '@consul/xkernel'

/** `cannot open LMDB storage at <path>: <problem>. <todo>.` */
export function ioError(path: string, problem: string, todo: string): StorageError {
  return new StorageError('IO', `cannot open LMDB storage at ${path}: ${problem}. ${todo}.`)
}

/** The `code` of a Node system error (`ENOENT`, `EACCES`, …), if it has one. */
export function errno(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code
}

/** The message of whatever was thrown, for quoting inside our own message. */
export function causeOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
