/**
 * The check of LMDB's data file before LMDB opens it: the `lmdb` native module crashes the
 * process (SIGSEGV/SIGBUS) on a data file whose meta pages are damaged or foreign, so those
 * are refused here with a clean `StorageError('IO')` (the page rules are in meta-check.ts).
 * It runs once the lock is held, so no other Consul process is writing the file meanwhile.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs'
import { join } from 'node:path'
import { META_CHECK_BYTES, metaPageProblem } from '../meta-check.js'
import { causeOf, errno, ioError } from './io-error.js'

/** LMDB's data file inside the directory (named in corruption errors). */
export const DATA_FILE = 'data.mdb'

/**
 * Refuses a data file in directory `path` whose meta pages are damaged or foreign. A missing
 * data file (a new store) passes, and so does an empty one (LMDB initializes it).
 */
export function checkDataFile(path: string): void {
  const file = join(path, DATA_FILE)
  let fd: number
  try {
    fd = openSync(file, 'r')
  } catch (error) {
    if (errno(error) === 'ENOENT') return // a new store
    throw ioError(path, `cannot read ${file} (${causeOf(error)})`, 'Fix its owner or permissions')
  }
  try {
    const size = fstatSync(fd).size
    const head = Buffer.alloc(Math.min(size, META_CHECK_BYTES))
    readSync(fd, head, 0, head.length, 0)
    const problem = metaPageProblem(head, size)
    if (problem !== undefined) {
      throw ioError(
        path,
        `${file} is damaged or is not an LMDB data file: ${problem}`,
        'Move the directory aside and rebuild this replica from its peers or a backup',
      )
    }
  } finally {
    closeSync(fd)
  }
}
