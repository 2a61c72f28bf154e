/**
 * Recovery's options, checked at the factory: a bad value throws
 * `XKernelError('INVALID_ARGUMENT')` naming the option.
 */
import { XKernelError } from '@consul/xkernel'
import { crc32 } from './codec.js'

export interface RecoveryOptions {
  /**
   * Take a coordinated checkpoint once the Order's wave has advanced this many waves past the
   * previous one (at the first boundary where every session can give its state). Default 64.
   */
  readonly checkpointEveryWaves?: number
  /**
   * Checkpoints kept in storage (≥ 2). The prune floor this member declares is the wave of
   * the *oldest* one kept, so a restart that finds the newest unreadable falls back to the one
   * before and still replays from the log. Default 2.
   */
  readonly keepCheckpoints?: number
  /** How often the prune floor is recomputed from the members' positions (ms). Default 100. */
  readonly floorEveryMs?: number
  /**
   * At a peer: how long a member heard restarting counts as recovering (Failure Detection's
   * timeouts for it are lengthened) if nothing new is heard from it first (ms). Default 10,000.
   */
  readonly maxRecoveringMs?: number
  /**
   * Size of the parts a checkpoint record is stored and transferred in (bytes, 1,024 to
   * 1,048,000). Each part is one direct datagram of a state transfer (the transport splits it
   * into `maxDatagram` fragments). Default 16,384.
   */
  readonly partBytes?: number
  /** State transfer: parts in flight at once (1 to 1,024). Default 16. */
  readonly transferWindow?: number
  /**
   * State transfer: the most bytes per second the fetcher asks for, so the group keeps ordering
   * meanwhile (0: as fast as the window lets it — each part asked for when one arrives).
   * Default 32,000,000 (on the project's 2-core machine: unpaced ≈ 95 MB/s with the group's
   * ordering at 0.18× its rate meanwhile; paced to 24 MB/s, 0.62×).
   */
  readonly transferBytesPerSecond?: number
  /** State transfer: a part not back after this long is asked for again (ms). Default 200. */
  readonly transferRetryMs?: number
  /** State transfer: a donor silent this long is replaced by the next member (ms). Default 2,000. */
  readonly transferDonorTimeoutMs?: number
  /**
   * The CRC-32 (IEEE) used for checkpoint records and their parts — this package's own
   * (TypeScript, ≈ 0.5 GB/s) by default; on Node, `zlib.crc32` from `node:zlib` is ≈ 5×
   * faster. It must be the standard CRC-32: it is checked on the check value
   * (`"123456789"` → `0xcbf43926`), and every member must compute the same one.
   */
  readonly crc32?: (bytes: Uint8Array) => number
  /**
   * Joins: how often a member left out — excluded, or behind a change of configuration it
   * missed — asks the others to take it in again (ms); also how long a member waits before it
   * repeats a join request no wave has carried yet (× 5). Default 200.
   */
  readonly joinRetryMs?: number
  /**
   * Joins: an excluded member (a false suspicion, the minority side of a partition) asks to
   * come back by itself, as a join (a new configuration and a state transfer). Default true;
   * false leaves it excluded, as before.
   */
  readonly rejoin?: boolean
  /**
   * Joins: whether this member asks the group to take `joiner` in when it asks (a host that is
   * not in the view). Default: every peer of the transport may join — the transport (its peer
   * list, the group key) is the admission list. A member that is excluded is asked about too.
   */
  readonly admit?: (joiner: string) => boolean
}

export interface ResolvedOptions {
  readonly checkpointEveryWaves: number
  readonly keepCheckpoints: number
  readonly floorEveryMs: number
  readonly maxRecoveringMs: number
  readonly partBytes: number
  readonly transferWindow: number
  readonly transferBytesPerSecond: number
  readonly transferRetryMs: number
  readonly transferDonorTimeoutMs: number
  readonly crc32: (bytes: Uint8Array) => number
  readonly joinRetryMs: number
  readonly rejoin: boolean
  readonly admit: (joiner: string) => boolean
}

function integer(
  name: string,
  value: unknown,
  fallback: number,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max)
    throw new XKernelError(
      'INVALID_ARGUMENT',
      `recovery option ${name} must be an integer >= ${min}${max < Number.MAX_SAFE_INTEGER ? ` and <= ${max}` : ''}, got ${String(value)}`,
    )
  return value
}

function positive(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0)
    throw new XKernelError(
      'INVALID_ARGUMENT',
      `recovery option ${name} must be a positive number of milliseconds, got ${String(value)}`,
    )
  return value
}

const CHECK = new TextEncoder().encode('123456789')

function admission(value: unknown): (joiner: string) => boolean {
  if (value === undefined) return () => true
  if (typeof value !== 'function')
    throw new XKernelError(
      'INVALID_ARGUMENT',
      'recovery option admit must be a function (joiner) => boolean',
    )
  return value as (joiner: string) => boolean
}

function flag(name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback
  if (typeof value !== 'boolean')
    throw new XKernelError('INVALID_ARGUMENT', `recovery option ${name} must be a boolean`)
  return value
}

function checksum(value: unknown): (bytes: Uint8Array) => number {
  if (value === undefined) return crc32
  let ok = false
  try {
    ok =
      typeof value === 'function' &&
      (value(CHECK) as number) >>> 0 === 0xcbf43926 &&
      (value(new Uint8Array(0)) as number) >>> 0 === 0
  } catch {
    ok = false
  }
  if (!ok)
    throw new XKernelError(
      'INVALID_ARGUMENT',
      'recovery option crc32 must be a CRC-32 (IEEE) function of bytes: crc32("123456789") is 0xcbf43926',
    )
  const f = value as (bytes: Uint8Array) => number
  return (bytes) => f(bytes) >>> 0
}

export function resolveOptions(options: RecoveryOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null)
    throw new XKernelError('INVALID_ARGUMENT', 'recovery options must be an object')
  const known = new Set([
    'checkpointEveryWaves',
    'keepCheckpoints',
    'floorEveryMs',
    'maxRecoveringMs',
    'partBytes',
    'transferWindow',
    'transferBytesPerSecond',
    'transferRetryMs',
    'transferDonorTimeoutMs',
    'crc32',
    'joinRetryMs',
    'rejoin',
    'admit',
  ])
  for (const key of Object.keys(options))
    if (!known.has(key))
      throw new XKernelError('INVALID_ARGUMENT', `unknown recovery option ${key}`)
  return {
    checkpointEveryWaves: integer('checkpointEveryWaves', options.checkpointEveryWaves, 64, 1),
    keepCheckpoints: integer('keepCheckpoints', options.keepCheckpoints, 2, 2),
    floorEveryMs: positive('floorEveryMs', options.floorEveryMs, 100),
    maxRecoveringMs: positive('maxRecoveringMs', options.maxRecoveringMs, 10_000),
    partBytes: integer('partBytes', options.partBytes, 16_384, 1_024, 1_048_000),
    transferWindow: integer('transferWindow', options.transferWindow, 16, 1, 1_024),
    transferBytesPerSecond: integer(
      'transferBytesPerSecond',
      options.transferBytesPerSecond,
      32_000_000,
      0,
    ),
    transferRetryMs: positive('transferRetryMs', options.transferRetryMs, 200),
    transferDonorTimeoutMs: positive(
      'transferDonorTimeoutMs',
      options.transferDonorTimeoutMs,
      2_000,
    ),
    crc32: checksum(options.crc32),
    joinRetryMs: positive('joinRetryMs', options.joinRetryMs, 200),
    rejoin: flag('rejoin', options.rejoin, true),
    admit: admission(options.admit),
  }
}
