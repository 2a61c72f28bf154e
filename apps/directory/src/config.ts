/** `consul-directory serve`'s command line, parsed and checked (pure: files and environment are read by the caller). */

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
  /** Where Redis clients connect (TCP). */
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
  /** The group's port name (and the UDP group id). Default `directory`. */
  readonly group: string
  readonly stack: 'strong' | 'weak'
  readonly order: 'total' | 'semantic'
  readonly linearizableReads: boolean
  /** `--encrypt`: the group's datagrams are encrypted (AEAD) instead of only authenticated. */
  readonly encrypt: boolean
  /**
   * What to do when `--data` holds no group yet: `'bootstrap'` opens the group afresh (the
   * first start of a new group, every member at once), `'join'` joins the running group and
   * fetches its state (a new replica, or one whose data was lost), `undefined` refuses to
   * start. On a data directory of an earlier run the replica recovers from it either way.
   */
  readonly init: 'bootstrap' | 'join' | undefined
  /** `AUTH`'s password (`--password` or `CONSUL_DIRECTORY_PASSWORD`); none: no `AUTH`. */
  readonly password?: string
  readonly suspectAfterMs: number
  readonly checkpointEveryWaves: number
  /** How long a command waits for the group before `UNCERTAIN … timed out` (ms; 0: forever). */
  readonly writeTimeoutMs: number
  /** Open client connections at most (`--max-clients`, Redis's `maxclients`). */
  readonly maxClients: number
  readonly logLevel: 'debug' | 'info' | 'warn' | 'error'
}

export const USAGE = `usage: consul-directory serve --self <id> --peers <id>=<host>:<port>,… --port [<host>:]<port>
                              --data <dir> (--key-file <file> | CONSUL_GROUP_KEY=<hex>)
                              [--bootstrap | --join] [--stack strong|weak] [--order total|semantic] [--linearizable-reads] [--encrypt]
                              [--password <p> | CONSUL_DIRECTORY_PASSWORD=<p>] [--group directory]
                              [--suspect-after-ms 1000] [--checkpoint-every-waves 1024] [--write-timeout-ms 10000] [--max-clients 10000]
                              [--log-level warn]
       consul-directory cluster [--replicas 3] [--base-port 6380] [--dir <dir>] [--stack strong|weak]
                              [--order total|semantic] [--linearizable-reads] [--encrypt] [--password <p>]`

export class ConfigError extends Error {
  override readonly name = 'ConfigError'
}

export function address(text: string, what: string, defaultHost?: string): PeerAddress {
  const at = text.lastIndexOf(':')
  const host = at < 0 ? defaultHost : text.slice(0, at)
  const port = Number(at < 0 ? text : text.slice(at + 1))
  if (
    host === undefined ||
    host.length === 0 ||
    !Number.isInteger(port) ||
    port < 0 ||
    port > 65535
  )
    throw new ConfigError(
      `${what}: ${JSON.stringify(text)} is not ${defaultHost ? '[host:]port' : 'host:port'}`,
    )
  return { host, port }
}

export function positive(text: string | undefined, what: string, fallback: number): number {
  if (text === undefined) return fallback
  const n = Number(text)
  if (!Number.isInteger(n) || n <= 0)
    throw new ConfigError(`${what} takes a positive integer, not ${text}`)
  return n
}

export function oneOf<T extends string>(
  text: string | undefined,
  what: string,
  values: readonly T[],
): T {
  const v = text ?? values[0]!
  if (!(values as readonly string[]).includes(v))
    throw new ConfigError(`${what} is ${values.join(' or ')}, not ${v}`)
  return v as T
}

/**
 * Splits `--name value`, `--name=value` and the valueless `flags`; throws on anything else or
 * on an option not in `known`.
 */
export function parseFlags(
  argv: readonly string[],
  known: readonly string[],
  switches: readonly string[],
): Map<string, string> {
  const flags = new Map<string, string>()
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (!arg.startsWith('--')) throw new ConfigError(`unexpected argument ${JSON.stringify(arg)}`)
    const eq = arg.indexOf('=')
    const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq)
    if (!known.includes(name) && !switches.includes(name))
      throw new ConfigError(`unknown option --${name}`)
    if (switches.includes(name)) {
      if (eq >= 0) throw new ConfigError(`--${name} takes no value`)
      flags.set(name, 'true')
      continue
    }
    const value = eq < 0 ? argv[++i] : arg.slice(eq + 1)
    if (value === undefined) throw new ConfigError(`--${name} takes a value`)
    flags.set(name, value)
  }
  return flags
}

/** Parses `serve`'s arguments; throws `ConfigError` saying what is wrong. */
export function parseServeArgs(
  argv: readonly string[],
  env: Record<string, string | undefined> = {},
): ReplicaConfig {
  const flags = parseFlags(
    argv,
    [
      'self',
      'peers',
      'port',
      'data',
      'key-file',
      'group',
      'stack',
      'order',
      'password',
      'suspect-after-ms',
      'checkpoint-every-waves',
      'write-timeout-ms',
      'max-clients',
      'log-level',
    ],
    ['linearizable-reads', 'bootstrap', 'join', 'encrypt'],
  )
  if (flags.has('bootstrap') && flags.has('join'))
    throw new ConfigError('--bootstrap and --join exclude each other')
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
  const password = flags.get('password') ?? env.CONSUL_DIRECTORY_PASSWORD
  if (password !== undefined && password.length === 0)
    throw new ConfigError('--password must not be empty')
  return {
    self,
    peers,
    listen: address(need('port'), '--port', '127.0.0.1'),
    dataDir: need('data'),
    ...(keyFile === undefined ? { keyHex: keyHex! } : { keyFile }),
    group: flags.get('group') ?? 'directory',
    stack: oneOf(flags.get('stack'), '--stack', ['strong', 'weak'] as const),
    order: oneOf(flags.get('order'), '--order', ['total', 'semantic'] as const),
    linearizableReads: flags.has('linearizable-reads'),
    encrypt: flags.has('encrypt'),
    init: flags.has('bootstrap') ? 'bootstrap' : flags.has('join') ? 'join' : undefined,
    ...(password === undefined ? {} : { password }),
    suspectAfterMs: positive(flags.get('suspect-after-ms'), '--suspect-after-ms', 1_000),
    checkpointEveryWaves: positive(
      flags.get('checkpoint-every-waves'),
      '--checkpoint-every-waves',
      1024,
    ),
    writeTimeoutMs:
      flags.get('write-timeout-ms') === '0'
        ? 0
        : positive(flags.get('write-timeout-ms'), '--write-timeout-ms', 10_000),
    maxClients: positive(flags.get('max-clients'), '--max-clients', 10_000),
    logLevel: oneOf(flags.get('log-level'), '--log-level', [
      'warn',
      'debug',
      'info',
      'error',
    ] as const),
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
 * 0–255, each key ≥ 16 bytes; blank lines and `#` comments skipped) — the form a rotation uses
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
