/**
 * Getting the store's directory ready before anything is written in it: it must be a
 * directory this process may read, write and enter. Only the last path component is ever
 * created, so a typo in the path fails instead of scattering directories.
 *
 * Invariant: when `prepareDirectory` returns, `path` is an existing directory that passed
 * `access(R_OK | W_OK | X_OK)`; when it throws (`StorageError('IO')`), it has created nothing.
 */
import { accessSync, constants, mkdirSync, statSync } from 'node:fs'
import { dirname } from 'node:path'
import { StorageError } from '@consul/xkernel'
import { causeOf, errno, ioError } from './io-error.js'

/**
 * Makes sure the absolute `path` is a usable directory, creating it (its parent must exist)
 * when it is missing and `create` is set.
 */
export function prepareDirectory(path: string, create: boolean): void {
  let exists = true
  try {
    if (!statSync(path).isDirectory()) {
      throw ioError(
        path,
        'it exists but is not a directory',
        'Pass the path of a directory (LMDB keeps data.mdb and lock.mdb inside it)',
      )
    }
  } catch (error) {
    if (StorageError.isInstance(error)) throw error
    if (errno(error) !== 'ENOENT' && errno(error) !== 'ENOTDIR') {
      throw ioError(
        path,
        `cannot inspect it (${causeOf(error)})`,
        'Check the path and its permissions',
      )
    }
    exists = false
  }
  if (!exists) {
    const parent = dirname(path)
    if (!create) {
      throw ioError(
        path,
        'the directory does not exist',
        'Create it, or open with { create: true }',
      )
    }
    let parentIsDirectory = false
    try {
      parentIsDirectory = statSync(parent).isDirectory()
    } catch {
      throw ioError(
        path,
        `its parent directory ${parent} does not exist`,
        'Create the parent first (lmdbStorage creates only the last path component, so a typo does not scatter directories)',
      )
    }
    if (!parentIsDirectory) {
      throw ioError(
        path,
        `its parent ${parent} is not a directory`,
        'Pass a path inside a directory',
      )
    }
    try {
      mkdirSync(path)
    } catch (error) {
      if (errno(error) !== 'EEXIST') {
        throw ioError(
          path,
          `cannot create the directory (${causeOf(error)})`,
          `Make ${parent} writable by this process, or create the directory yourself`,
        )
      }
    }
  }
  try {
    accessSync(path, constants.R_OK | constants.W_OK | constants.X_OK)
  } catch (error) {
    throw ioError(
      path,
      `the directory is not readable and writable by this process (${errno(error) ?? causeOf(error)})`,
      'Fix its owner or permissions, or pass a directory this process may write',
    )
  }
}
