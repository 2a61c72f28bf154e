/** The server's command line, parsed and checked (pure: the file and environment are read by the caller). */

import { type GroupKey, readKeyring } from '@consul/transport-udp'

export interface PeerAddress {
  readonly host: string
  readonly port: number
}

export interface ReplicaConfig {
  /** This replica's member id. */
  readonly self: string
  /** Every member's UDP address (this one's included), in member order. */
  readonly peers: Readonly<Record<string, PeerAddress>>
  /** Where clients connect (TCP). */
  readonly listen: PeerAddress
  /** The LMDB directory. */
  readonly dataDir: string
  /**
   * The group key: read from this file (hex, or at least 16 raw bytes), or a keyring of
   * `<id>:<hex>` lines (`keyringFromFile`; re-read on `SIGHUP` for a rotation) …
   */
  readonly keyFile?: string
  /** … or given in hex (the `CONSUL_GROUP_KEY` environment variable). */
  readonly keyHex?: string
  /** The group's port name (and the UDP group id). Default `tuple-space`. */
  readonly group: string
  /** `--encrypt`: the group's datagrams are encrypted (AEAD) instead of only authenticated. */
  readonly encrypt: boolean
  readonly suspectAfterMs: number
  readonly checkpointEveryWaves: number
  /** Open client connections at most (`--max-connections`). */
  readonly maxConnections: number
  readonly logLevel: 'debug' | 'info' | 'warn' | 'error'
}

export const USAGE = `usage: consul-tuple-space --self <id> --peers <id>=<host>:<port>,… --listen [<host>:]<port>
                          --data <dir> (--key-file <file> | CONSUL_GROUP_KEY=<hex>)
                          [--group tuple-space] [--encrypt] [--suspect-after-ms 1000]
                          [--checkpoint-every-waves 64] [--max-connections 10000] [--log-level warn]`

export class ConfigError extends Error {
  override readonly name = 'ConfigError'
}

/**
 * `host:port` (or `[host:]port` with a default host). The port is decimal digits — `Number()`
 * alone would take `''` as 0, `0x1F` and `1e3` — from 1 (or 0, "any free one", where
 * `anyPort`) to 65535.
 */
function address(text: string, what: string, defaultHost?: string, anyPort = false): PeerAddress {
  const at = text.lastIndexOf(':')
  const host = at < 0 ? defaultHost : text.slice(0, at)
  const digits = at < 0 ? text : text.slice(at + 1)
  const port = /^\d{1,5}$/.test(digits) ? Number(digits) : Number.NaN
  if (
    host === undefined ||
    host.length === 0 ||
    !Number.isInteger(port) ||
    port < (anyPort ? 0 : 1) ||
    port > 65535
  )
    throw new ConfigError(
      `${what}: ${JSON.stringify(text)} is not ${defaultHost ? '[host:]port' : 'host:port'}`,
    )
  return { host, port }
}

function positive(text: string | undefined, what: string, fallback: number): number {
  if (text === undefined) return fallback
  const n = /^\d+$/.test(text) ? Number(text) : Number.NaN
  if (!Number.isSafeInteger(n) || n <= 0)
    throw new ConfigError(`${what} takes a positive integer, not ${text}`)
  return n
}

/** Parses `argv` (without node and the script); throws `ConfigError` saying what is wrong. */
export function parseArgs(
  argv: readonly string[],
  env: Record<string, string | undefined> = {},
): ReplicaConfig {
  const flags = new Map<string, string>()
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (!arg.startsWith('--')) throw new ConfigError(`unexpected argument ${JSON.stringify(arg)}`)
    const eq = arg.indexOf('=')
    const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq)
    if (name === 'encrypt') {
      if (eq >= 0) throw new ConfigError('--encrypt takes no value')
      flags.set(name, 'true')
      continue
    }
    const value = eq < 0 ? argv[++i] : arg.slice(eq + 1)
    if (value === undefined) throw new ConfigError(`--${name} takes a value`)
    flags.set(name, value)
  }
  const known = [
    'self',
    'peers',
    'listen',
    'data',
    'key-file',
    'group',
    'encrypt',
    'suspect-after-ms',
    'checkpoint-every-waves',
    'max-connections',
    'log-level',
  ]
  for (const name of flags.keys())
    if (!known.includes(name)) throw new ConfigError(`unknown option --${name}`)
  const need = (name: string) => {
    const v = flags.get(name)
    if (v === undefined || v.length === 0) throw new ConfigError(`--${name} is required`)
    return v
  }
  const self = need('self')
  const peers: Record<string, PeerAddress> = {}
  for (const item of need('peers').split(',')) {
    const eq = item.indexOf('=')
    if (eq <= 0) throw new ConfigError(`--peers: ${JSON.stringify(item)} is not <id>=<host>:<port>`)
    const id = item.slice(0, eq)
    if (Object.hasOwn(peers, id)) throw new ConfigError(`--peers names ${id} twice`)
    peers[id] = address(item.slice(eq + 1), `--peers ${id}`)
  }
  if (!Object.hasOwn(peers, self)) throw new ConfigError(`--peers must include --self (${self})`)
  const keyFile = flags.get('key-file')
  const keyHex = env.CONSUL_GROUP_KEY
  if (keyFile === undefined && (keyHex === undefined || keyHex.length === 0))
    throw new ConfigError('a group key is required: --key-file <file> or CONSUL_GROUP_KEY=<hex>')
  if (keyFile === undefined && !/^(?:[0-9a-fA-F]{2}){16,}$/.test(keyHex!))
    throw new ConfigError('CONSUL_GROUP_KEY must be at least 16 bytes in hex')
  const logLevel = flags.get('log-level') ?? 'warn'
  if (!['debug', 'info', 'warn', 'error'].includes(logLevel))
    throw new ConfigError(`--log-level is debug, info, warn or error, not ${logLevel}`)
  return {
    self,
    peers,
    listen: address(need('listen'), '--listen', '127.0.0.1', true),
    dataDir: need('data'),
    ...(keyFile === undefined ? { keyHex: keyHex! } : { keyFile }),
    group: flags.get('group') ?? 'tuple-space',
    encrypt: flags.has('encrypt'),
    suspectAfterMs: positive(flags.get('suspect-after-ms'), '--suspect-after-ms', 1_000),
    checkpointEveryWaves: positive(
      flags.get('checkpoint-every-waves'),
      '--checkpoint-every-waves',
      64,
    ),
    maxConnections: positive(flags.get('max-connections'), '--max-connections', 10_000),
    logLevel: logLevel as ReplicaConfig['logLevel'],
  }
}

/** A key file's bytes: hex text (whitespace ignored), or the raw bytes; at least 16. */
export function keyFromFile(contents: Uint8Array): Uint8Array {
  const text = Buffer.from(contents).toString('utf8').trim()
  const key = /^(?:[0-9a-fA-F]{2})+$/.test(text) ? Buffer.from(text, 'hex') : contents
  if (key.byteLength < 16) throw new ConfigError('the group key must be at least 16 bytes')
  return key
}

/** One key of the group's keyring (the UDP transport's `GroupKey`). */
export type RingKey = GroupKey

/**
 * A key file's keyring (`readKeyring` of `@consul/transport-udp`): lines `<id>:<hex>` (id
 * 0–255, each key ≥ 16 bytes; blank lines and `#` comments skipped) — what a rotation edits
 * (add the new id everywhere, `SIGHUP`, wait, drop the old one, `SIGHUP`) — or a single key as
 * `keyFromFile` reads it, which is id 0. Throws `ConfigError` saying which line is wrong.
 */
export function keyringFromFile(contents: Uint8Array): RingKey[] {
  try {
    return readKeyring(contents)
  } catch (error) {
    throw new ConfigError(error instanceof Error ? error.message : String(error))
  }
}
