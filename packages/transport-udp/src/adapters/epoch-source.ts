/**
 * Where a member's epoch comes from when the application does not pass one: the wall clock
 * (milliseconds since 1970), or a file that remembers the last epoch issued. An epoch names
 * one incarnation of a member; receivers refuse an epoch lower than one they have seen from
 * that member, and AEAD nonces are `epoch ‖ counter`, so an epoch must never be reused.
 *
 * - Wall clock: `max(Date.now(), last issued in this process + 1)`. Fails if the clock is
 *   stepped back past the previous incarnation's start: peers then refuse the member
 *   (`drop.staleEpoch`, a warning naming both epochs) until the clock has caught up.
 * - `epochFile`: `max(Date.now(), stored + 1)`, written (temporary file, fsync, rename) before
 *   the socket is bound, so it grows across restarts even when the clock steps back. Fails if
 *   the file is lost (it falls back to the clock) or unreadable (`udp()` rejects).
 *
 * Under `src/adapters/` because it reads the real clock and the file system.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs'
import { dirname } from 'node:path'
import { UdpTransportError } from '../errors.js'

const MAX_EPOCH = 2 ** 48 - 1
let lastIssued = 0

/** A fresh epoch from the wall clock, above every one this process issued before. */
export function wallClockEpoch(): number {
  lastIssued = Math.max(Date.now(), lastIssued + 1)
  return lastIssued
}

function epochFileError(path: string, what: string, cause?: unknown): UdpTransportError {
  return new UdpTransportError(
    'EPOCH_FILE',
    `epochFile ${path}: ${what}; fix its permissions or contents, or delete it to start again from the wall clock`,
    cause === undefined ? undefined : { cause },
  )
}

/** The next epoch from `path` (created if missing), stored durably before it is returned. */
export function fileEpoch(path: string): number {
  let stored = 0
  try {
    const text = readFileSync(path, 'utf8').trim()
    if (!/^\d{1,15}$/.test(text) || Number(text) > MAX_EPOCH) {
      throw epochFileError(path, `holds ${JSON.stringify(text.slice(0, 40))}, not an epoch`)
    }
    stored = Number(text)
  } catch (error) {
    if (error instanceof UdpTransportError) throw error
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw epochFileError(path, `cannot be read (${(error as NodeJS.ErrnoException).code})`, error)
    }
  }
  const epoch = Math.max(wallClockEpoch(), stored + 1)
  if (epoch > MAX_EPOCH) throw epochFileError(path, 'the epoch would exceed 2^48 - 1')
  lastIssued = Math.max(lastIssued, epoch)
  const temporary = `${path}.tmp`
  try {
    const fd = openSync(temporary, 'w', 0o600)
    try {
      writeSync(fd, `${epoch}\n`)
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    renameSync(temporary, path)
    // The rename is durable once the directory is synced.
    const dir = openSync(dirname(path), 'r')
    try {
      fsyncSync(dir)
    } finally {
      closeSync(dir)
    }
  } catch (error) {
    throw epochFileError(
      path,
      `cannot be written (${(error as NodeJS.ErrnoException).code ?? String(error)})`,
      error,
    )
  }
  return epoch
}
