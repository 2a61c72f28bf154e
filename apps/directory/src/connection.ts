/**
 * One client connection: RESP requests in, replies out, in request order (pipelining).
 *
 * Every request gets a slot in the connection's reply queue the moment it is parsed; slots
 * are written from the head as they complete, so replies keep the requests' order whatever
 * order the group answers in. A write is submitted at once (many may be in flight) and its
 * slot completes when it is `'safe'` and applied here. A local read does not run when it is
 * parsed but when its slot reaches the head — after every earlier request of the connection
 * has been answered — so a client always reads its own writes, even pipelined.
 *
 * Bad input: an unknown command, a wrong arity, a bad argument gets Redis's own error reply
 * and the connection goes on; broken framing (`ProtocolError`) gets `-ERR Protocol error: …`
 * after the replies already owed, and the connection is closed, as Redis does.
 */

import { type DispatcherControl, notApplied } from '@consul/xkernel'
import {
  type Argv,
  ErrorReply,
  encodeReply,
  MapReply,
  OK,
  PONG,
  ProtocolError,
  QUEUED,
  type Reply,
  RequestParser,
  SetReply,
  Simple,
  Verbatim,
} from './resp.js'
import { ARITY, arityError, type Directory, execute, READS } from './store.js'

/** What a replica tells its connections about itself. */
export interface ReplicaStatus {
  /** This replica's member id. */
  readonly self: string
  /** `'strong'` or `'weak'`. */
  readonly stack: string
  /** `'total'` or `'semantic'`. */
  readonly order: string
  /** Recovery's state (`active`, `recovering`, `transferring`, `failed`), `starting` before the group is open. */
  readonly recovery: string
  /** Membership's view (strong stack), `null` while re-created or without Membership. */
  readonly view: {
    readonly id: number
    readonly configuration: number
    readonly members: readonly string[]
  } | null
  /** Commands applied by this process (replayed ones included). */
  readonly applied: number
  /** A state transfer's progress, while one runs. */
  readonly transfer?: { readonly bytes: number; readonly total: number | undefined }
  /** The group's datagrams: encrypted or only authenticated, the keyring's ids, peers behind. */
  readonly transport?: {
    readonly encrypted: boolean
    readonly keyIds: readonly number[]
    readonly peersBehind: number
  }
}

/** What connections share: the group, the options, the counters. */
export interface ServerContext {
  /** The group's Dispatcher now; `undefined` while the group is being re-created. */
  readonly dispatcher: () => DispatcherControl | undefined
  readonly status: () => ReplicaStatus
  /** Reads ordered through the group (linearizable) rather than served from local state. */
  readonly linearizableReads: boolean
  /** The `default` user's password; `undefined`: no `AUTH` needed. */
  readonly password: string | undefined
  /** Most requests one connection may have unanswered before its reading pauses. */
  readonly maxPending: number
  /**
   * How long a submitted command may wait for the group before its client is answered
   * `UNCERTAIN … timed out` (ms; 0: forever). It may still be applied later — in a minority
   * that heals, say — so the answer says the outcome is unknown.
   */
  readonly writeTimeoutMs: number
  readonly parserLimits: {
    readonly maxBulkBytes?: number
    readonly maxArgs?: number
    readonly maxInlineBytes?: number
  }
  readonly counters: ServerCounters
  /** The clock (ms since the epoch) a write carries: expiry is decided from it. */
  readonly now: () => number
  /** The next client id (`CLIENT ID`). */
  readonly nextId: () => number
  /** Every open connection, for `INFO clients` and `CLIENT LIST`. */
  readonly connections: Set<Connection>
}

export interface ServerCounters {
  connectionsTotal: number
  /** Connections refused at `maxClients` (`-ERR max number of clients reached`). */
  rejectedConnections: number
  commands: number
  writes: number
  localReads: number
  orderedReads: number
  transactions: number
  errorReplies: number
  protocolErrors: number
  /** Writes answered "not applied" (minority, recovering). */
  refused: number
  /** Writes whose outcome the replica lost (exclusion, closing) or that timed out. */
  uncertain: number
  /** Of those, the ones that timed out. */
  timedOut: number
}

export const newCounters = (): ServerCounters => ({
  connectionsTotal: 0,
  rejectedConnections: 0,
  commands: 0,
  writes: 0,
  localReads: 0,
  orderedReads: 0,
  transactions: 0,
  errorReplies: 0,
  protocolErrors: 0,
  refused: 0,
  uncertain: 0,
  timedOut: 0,
})

/** What Redis version clients are told (they check it for features). */
export const REDIS_VERSION = '7.2.0'

interface Slot {
  done: boolean
  reply: Reply
  /** The protocol in force when the request was read. */
  protocol: 2 | 3
  /** A local read: runs when the slot reaches the head. */
  run?: (() => Reply) | undefined
  /** Close the connection once this reply is written. */
  close?: boolean
}

const upper = (b: Buffer) => b.toString('latin1').toUpperCase()
const text = (b: Buffer) => b.toString('utf8')

/** Redis's error for a command it does not know. */
export function unknownCommand(argv: Argv): ErrorReply {
  const args = argv
    .slice(1)
    .map((a) => `'${a.toString('latin1').slice(0, 128)}' `)
    .join('')
  return new ErrorReply(
    `ERR unknown command '${argv[0]!.toString('latin1').slice(0, 128)}', with args beginning with: ${args}`,
  )
}

const wrongArity = (name: string) =>
  new ErrorReply(`ERR wrong number of arguments for '${name.toLowerCase()}' command`)

/** A failed submit, as a client should see it. */
export function failureReply(
  error: unknown,
  counters: ServerCounters,
  self: string,
  write: boolean,
): ErrorReply {
  const e = error as { code?: unknown; message?: unknown }
  const message = String(typeof e?.message === 'string' ? e.message : error).replace(/\s+/g, ' ')
  if (e?.code === 'RECOVERING') {
    counters.refused++
    return new ErrorReply(`LOADING ${message}; nothing was done`)
  }
  // Never sent (`notApplied`): nothing was done anywhere, a retry cannot apply it twice.
  if (notApplied(error) && e?.code === 'NO_PRIMARY') {
    counters.refused++
    return new ErrorReply(`CLUSTERDOWN ${message}; the command was not applied`)
  }
  if (notApplied(error) && e?.code === 'CLOSED') {
    // e.g. still queued when the group moved into its next configuration (a member joined).
    counters.refused++
    return new ErrorReply(`TRYAGAIN ${message}; the command was not applied`)
  }
  if (e?.code === 'HANDLER_FAILED' || e?.code === 'INVALID_ARGUMENT')
    return new ErrorReply(`ERR ${self}: ${message}`)
  counters.uncertain++
  return new ErrorReply(
    `UNCERTAIN ${self}: ${String(e?.code ?? 'ERROR')}: ${message} ; ${write ? 'the write may or may not have been applied' : 'no answer'}`,
  )
}

export class Connection {
  readonly id: number
  readonly createdAt: number
  name: string | undefined
  libName: string | undefined
  libVersion: string | undefined
  private protocol: 2 | 3 = 2
  private authenticated: boolean
  private readonly parser: RequestParser
  private readonly slots: Slot[] = []
  private head = 0
  private pendingCount = 0
  private multi: Argv[] | undefined
  private multiDirty = false
  private closing = false
  private closed = false
  private paused = false
  lastCommand = ''

  constructor(
    private readonly ctx: ServerContext,
    private readonly io: {
      /** Writes reply bytes; false when the socket's buffer is full (wait for `drained`). */
      write(chunks: Buffer[]): boolean
      /** Ends the connection once what was written is flushed. */
      end(): void
      pause(): void
      resume(): void
      /** The peer's address, for `CLIENT LIST`. */
      readonly address: string
    },
  ) {
    this.id = ctx.nextId()
    this.createdAt = Date.now()
    this.authenticated = ctx.password === undefined
    this.parser = new RequestParser(ctx.parserLimits)
    ctx.counters.connectionsTotal++
    ctx.connections.add(this)
  }

  /** Bytes from the client. */
  push(chunk: Buffer): void {
    if (this.closing || this.closed) return
    let requests: Argv[]
    try {
      requests = this.parser.push(chunk)
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error
      // What came before the broken part still runs; then the error, then close.
      this.ctx.counters.protocolErrors++
      for (const argv of error.before) {
        if (this.closing) break
        this.request(argv)
      }
      if (this.closing) {
        this.flush()
        return
      }
      this.closing = true
      this.immediate(new ErrorReply(`ERR Protocol error: ${error.message}`), true)
      this.flush()
      return
    }
    for (const argv of requests) {
      if (this.closing) break
      this.request(argv)
    }
    this.flush()
  }

  /** The socket closed: nothing more is written; pending submits settle unseen. */
  close(): void {
    this.closed = true
    this.ctx.connections.delete(this)
  }

  /** The socket's buffer drained. */
  drained(): void {
    this.flush()
  }

  /** A line for `CLIENT LIST` / `CLIENT INFO`. */
  describe(): string {
    const age = Math.floor((Date.now() - this.createdAt) / 1000)
    return (
      `id=${this.id} addr=${this.io.address} name=${this.name ?? ''} age=${age} db=0 ` +
      `multi=${this.multi === undefined ? -1 : this.multi.length} qbuf=0 ` +
      `cmd=${this.lastCommand.toLowerCase() || 'NULL'} resp=${this.protocol} ` +
      `lib-name=${this.libName ?? ''} lib-ver=${this.libVersion ?? ''}`
    )
  }

  // -------------------------------------------------------------------------------------------

  private request(original: Argv): void {
    const ctx = this.ctx
    ctx.counters.commands++
    this.lastCommand = upper(original[0]!)
    // One database here: FLUSHALL is FLUSHDB (ASYNC/SYNC accepted), in MULTI too.
    const argv =
      this.lastCommand === 'FLUSHALL' ? [Buffer.from('FLUSHDB'), ...original.slice(1)] : original
    const name = upper(argv[0]!)
    if (name === 'QUIT') {
      // Answered after every earlier request; then the connection ends.
      this.closing = true
      this.immediate(OK, true)
      return
    }
    if (!this.authenticated && name !== 'AUTH' && name !== 'HELLO') {
      this.immediate(new ErrorReply('NOAUTH Authentication required.'))
      return
    }
    if (this.multi !== undefined && name !== 'EXEC' && name !== 'DISCARD' && name !== 'MULTI') {
      this.queue(name, argv)
      return
    }
    const data = ARITY[name]
    if (data !== undefined) {
      const bad = arityError(argv)
      if (bad !== undefined) this.immediate(bad)
      else this.data([argv], READS.has(name), false)
      return
    }
    this.immediate(this.control(name, argv))
  }

  /** A command inside `MULTI`: checked now, run at `EXEC`. */
  private queue(name: string, argv: Argv): void {
    if (ARITY[name] !== undefined) {
      const bad = arityError(argv)
      if (bad !== undefined) {
        this.multiDirty = true
        this.immediate(bad)
        return
      }
      this.multi!.push(argv)
      this.immediate(QUEUED)
      return
    }
    this.multiDirty = true
    if (name === 'WATCH') {
      this.immediate(new ErrorReply('ERR WATCH inside MULTI is not allowed'))
      return
    }
    this.immediate(
      CONTROL_ARITY[name] !== undefined
        ? new ErrorReply(
            `ERR ${name} is not supported inside MULTI here (only data commands are queued)`,
          )
        : unknownCommand(argv),
    )
  }

  /**
   * Data commands: one `run` — a single command, or a transaction's. Read-only ones are served
   * from the local state unless reads are ordered.
   */
  private data(commands: Argv[], readOnly: boolean, transaction: boolean): void {
    const ctx = this.ctx
    const wrap = (replies: Reply[]): Reply => (transaction ? replies : replies[0]!)
    if (readOnly && !ctx.linearizableReads) {
      ctx.counters.localReads += commands.length
      this.deferred(() => {
        const control = ctx.dispatcher()
        const status = ctx.status()
        if (control === undefined || status.recovery !== 'active')
          return new ErrorReply(
            `LOADING ${status.self} is ${control === undefined ? 're-creating its group' : status.recovery}: it serves reads once active`,
          )
        const state = control.state() as Directory
        const now = ctx.now()
        return wrap(commands.map((argv) => execute(state, argv, now)))
      })
      return
    }
    if (readOnly) ctx.counters.orderedReads += commands.length
    else ctx.counters.writes += commands.length
    const slot = this.pending()
    const control = ctx.dispatcher()
    if (control === undefined) {
      ctx.counters.refused++
      this.complete(
        slot,
        new ErrorReply(
          `LOADING ${ctx.status().self} is re-creating its group; nothing was done, retry`,
        ),
      )
      return
    }
    let submitted: Promise<unknown>
    try {
      submitted = control.submit('run', { c: commands, t: ctx.now() })
    } catch (error) {
      this.complete(slot, failureReply(error, ctx.counters, ctx.status().self, !readOnly))
      return
    }
    const timer =
      ctx.writeTimeoutMs > 0
        ? setTimeout(() => {
            if (slot.done) return
            ctx.counters.uncertain++
            ctx.counters.timedOut++
            this.complete(
              slot,
              new ErrorReply(
                `UNCERTAIN ${ctx.status().self}: no answer from the group within ${ctx.writeTimeoutMs} ms; ${readOnly ? 'no answer' : 'the write may or may not be applied (later)'}`,
              ),
            )
          }, ctx.writeTimeoutMs)
        : undefined
    submitted.then(
      (replies) => {
        clearTimeout(timer)
        this.complete(slot, wrap(replies as Reply[]))
      },
      (error: unknown) => {
        clearTimeout(timer)
        this.complete(slot, failureReply(error, ctx.counters, ctx.status().self, !readOnly))
      },
    )
  }

  /** Connection and server commands, answered here. */
  private control(name: string, argv: Argv): Reply {
    const ctx = this.ctx
    const n = argv.length
    switch (name) {
      case 'PING':
        if (n > 2) return wrongArity(name)
        return n === 2 ? argv[1]! : PONG
      case 'ECHO':
        return n === 2 ? argv[1]! : wrongArity(name)
      case 'SELECT': {
        if (n !== 2) return wrongArity(name)
        const index = text(argv[1]!)
        if (!/^-?\d+$/.test(index))
          return new ErrorReply('ERR value is not an integer or out of range')
        return index === '0' ? OK : new ErrorReply('ERR DB index is out of range')
      }
      case 'AUTH':
        if (n < 2 || n > 3) return wrongArity(name)
        return this.auth(n === 3 ? text(argv[1]!) : 'default', text(argv[n - 1]!))
      case 'HELLO':
        return this.hello(argv)
      case 'MULTI':
        if (n !== 1) return wrongArity(name)
        if (this.multi !== undefined) return new ErrorReply('ERR MULTI calls can not be nested')
        this.multi = []
        this.multiDirty = false
        return OK
      case 'EXEC': {
        if (n !== 1) return wrongArity(name)
        const queued = this.multi
        if (queued === undefined) return new ErrorReply('ERR EXEC without MULTI')
        const dirty = this.multiDirty
        this.multi = undefined
        this.multiDirty = false
        if (dirty)
          return new ErrorReply('EXECABORT Transaction discarded because of previous errors.')
        if (queued.length === 0) return []
        ctx.counters.transactions++
        this.data(
          queued,
          queued.every((argv) => READS.has(upper(argv[0]!))),
          true,
        )
        return SKIP
      }
      case 'DISCARD':
        if (n !== 1) return wrongArity(name)
        if (this.multi === undefined) return new ErrorReply('ERR DISCARD without MULTI')
        this.multi = undefined
        this.multiDirty = false
        return OK
      case 'WATCH':
        return new ErrorReply(
          'ERR WATCH is not supported here: MULTI/EXEC is always applied as one atomic replicated command',
        )
      case 'UNWATCH':
        return n === 1 ? OK : wrongArity(name)
      case 'CLIENT':
        return this.client(argv)
      case 'INFO':
        return new Verbatim(this.info(argv.slice(1).map((a) => text(a).toLowerCase())))
      case 'COMMAND':
        return commandReply(argv)
      case 'CONFIG':
        return configReply(argv)
      case 'TIME': {
        const us = BigInt(Math.round(ctx.now() * 1000))
        return [String(us / 1_000_000n), String(us % 1_000_000n)]
      }
      case 'LASTSAVE':
        return Math.floor(Date.now() / 1000)
      default:
        return unknownCommand(argv)
    }
  }

  private auth(user: string, password: string): Reply {
    if (this.ctx.password === undefined)
      return new ErrorReply(
        'ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?',
      )
    if (user !== 'default' || password !== this.ctx.password)
      return new ErrorReply('WRONGPASS invalid username-password pair or user is disabled.')
    this.authenticated = true
    return OK
  }

  private hello(argv: Argv): Reply {
    let protocol = this.protocol
    let i = 1
    if (argv.length > 1) {
      const v = text(argv[1]!)
      if (!/^\d+$/.test(v))
        return new ErrorReply('ERR Protocol version is not an integer or out of range')
      if (v !== '2' && v !== '3') return new ErrorReply('NOPROTO unsupported protocol version')
      protocol = v === '3' ? 3 : 2
      i = 2
    }
    let name: string | undefined
    for (; i < argv.length; i++) {
      const option = upper(argv[i]!)
      if (option === 'AUTH' && i + 2 < argv.length) {
        const result = this.auth(text(argv[i + 1]!), text(argv[i + 2]!))
        if (result !== OK) return result
        i += 2
      } else if (option === 'SETNAME' && i + 1 < argv.length) {
        name = text(argv[++i]!)
      } else {
        return new ErrorReply(`ERR Syntax error in HELLO option '${text(argv[i]!)}'`)
      }
    }
    if (!this.authenticated)
      return new ErrorReply(
        'NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time',
      )
    if (name !== undefined) this.name = name
    this.protocol = protocol
    return new MapReply([
      ['server', 'redis'],
      ['version', REDIS_VERSION],
      ['proto', protocol],
      ['id', this.id],
      ['mode', 'standalone'],
      ['role', 'master'],
      ['modules', []],
    ])
  }

  private client(argv: Argv): Reply {
    if (argv.length < 2) return wrongArity('client')
    const sub = upper(argv[1]!)
    const n = argv.length
    switch (sub) {
      case 'ID':
        return n === 2 ? this.id : wrongArity('client|id')
      case 'SETNAME': {
        if (n !== 3) return wrongArity('client|setname')
        const name = text(argv[2]!)
        if (/[^!-~]/.test(name))
          return new ErrorReply(
            'ERR Client names cannot contain spaces, newlines or special characters.',
          )
        this.name = name.length === 0 ? undefined : name
        return OK
      }
      case 'GETNAME':
        return n === 2 ? (this.name ?? null) : wrongArity('client|getname')
      case 'SETINFO': {
        if (n !== 4) return wrongArity('client|setinfo')
        const attr = upper(argv[2]!)
        const value = text(argv[3]!)
        if (attr === 'LIB-NAME') this.libName = value
        else if (attr === 'LIB-VER') this.libVersion = value
        else return new ErrorReply(`ERR Unrecognized option '${text(argv[2]!)}'`)
        return OK
      }
      case 'INFO':
        return n === 2 ? new Verbatim(`${this.describe()}\n`) : wrongArity('client|info')
      case 'LIST':
        return new Verbatim([...this.ctx.connections].map((c) => `${c.describe()}\n`).join(''))
      case 'NO-EVICT':
      case 'NO-TOUCH':
        return n === 3 ? OK : wrongArity(`client|${sub.toLowerCase()}`)
      default:
        return new ErrorReply(`ERR unknown subcommand '${text(argv[1]!)}'. Try CLIENT HELP.`)
    }
  }

  /** `INFO`: Redis's sections that clients read, and a `consul` one. */
  private info(sections: string[]): string {
    const ctx = this.ctx
    const status = ctx.status()
    const want = (s: string) =>
      sections.length === 0 ||
      sections.includes(s) ||
      sections.includes('all') ||
      sections.includes('everything') ||
      (sections.includes('default') && s !== 'commandstats')
    const control = ctx.dispatcher()
    const state =
      status.recovery === 'active' ? (control?.state() as Directory | undefined) : undefined
    const out: string[] = []
    if (want('server'))
      out.push(
        '# Server',
        `redis_version:${REDIS_VERSION}`,
        'redis_mode:standalone',
        `process_id:${process.pid}`,
        `uptime_in_seconds:${Math.floor(process.uptime())}`,
        'server_name:consul-directory',
        '',
      )
    if (want('clients')) out.push('# Clients', `connected_clients:${ctx.connections.size}`, '')
    if (want('persistence')) {
      const loading = status.recovery === 'active' ? 0 : 1
      out.push('# Persistence', `loading:${loading}`)
      if (loading === 1) {
        out.push('loading_eta_seconds:1')
        if (status.transfer !== undefined)
          out.push(
            `loading_loaded_bytes:${status.transfer.bytes}`,
            ...(status.transfer.total === undefined
              ? []
              : [
                  `loading_total_bytes:${status.transfer.total}`,
                  `loading_loaded_perc:${((100 * status.transfer.bytes) / Math.max(1, status.transfer.total)).toFixed(2)}`,
                ]),
          )
      }
      out.push('')
    }
    if (want('stats')) {
      const c = ctx.counters
      out.push(
        '# Stats',
        `total_connections_received:${c.connectionsTotal}`,
        `rejected_connections:${c.rejectedConnections}`,
        `total_commands_processed:${c.commands}`,
        `total_error_replies:${c.errorReplies}`,
        '',
      )
    }
    if (want('replication')) out.push('# Replication', 'role:master', 'connected_slaves:0', '')
    if (want('keyspace')) {
      out.push('# Keyspace')
      if (state !== undefined && state.keys.size > 0) {
        let expires = 0
        for (const e of state.keys.values()) if (e.expireAt !== undefined) expires++
        out.push(`db0:keys=${state.keys.size},expires=${expires},avg_ttl=0`)
      }
      out.push('')
    }
    if (want('consul')) {
      const c = ctx.counters
      const v = status.view
      out.push(
        '# Consul',
        `replica:${status.self}`,
        `stack:${status.stack}`,
        `order:${status.order}`,
        `reads:${ctx.linearizableReads ? 'linearizable' : 'local'}`,
        `recovery:${status.recovery}`,
        `view_id:${v === null ? '' : `${v.configuration}.${v.id}`}`,
        `view_members:${v === null ? '' : v.members.join(',')}`,
        `applied_commands:${status.applied}`,
        `keys:${state?.keys.size ?? ''}`,
        `writes:${c.writes}`,
        `local_reads:${c.localReads}`,
        `ordered_reads:${c.orderedReads}`,
        `transactions:${c.transactions}`,
        `refused_not_applied:${c.refused}`,
        `uncertain:${c.uncertain}`,
        `timed_out:${c.timedOut}`,
        `protocol_errors:${c.protocolErrors}`,
        ...(status.transport === undefined
          ? []
          : [
              `transport:${status.transport.encrypted ? 'aead' : 'hmac'}`,
              `transport_keys:${status.transport.keyIds.join(',')}`,
              `transport_peers_behind:${status.transport.peersBehind}`,
            ]),
        '',
      )
    }
    return out.join('\r\n')
  }

  // -------------------------------------------------------------------------------------------
  // The reply queue

  private immediate(reply: Reply, close = false): void {
    if (reply === SKIP) return
    if (reply instanceof ErrorReply) this.ctx.counters.errorReplies++
    this.slots.push({ done: true, reply, protocol: this.protocol, ...(close ? { close } : {}) })
  }

  private deferred(run: () => Reply): void {
    this.slots.push({ done: false, reply: null, protocol: this.protocol, run })
    this.pendingCount++
    this.backpressure()
  }

  private pending(): Slot {
    const slot: Slot = { done: false, reply: null, protocol: this.protocol }
    this.slots.push(slot)
    this.pendingCount++
    this.backpressure()
    return slot
  }

  private complete(slot: Slot, reply: Reply): void {
    if (slot.done) return
    if (reply instanceof ErrorReply) this.ctx.counters.errorReplies++
    slot.done = true
    slot.reply = reply
    this.pendingCount--
    this.flush()
  }

  private backpressure(): void {
    if (!this.paused && this.pendingCount >= this.ctx.maxPending) {
      this.paused = true
      this.io.pause()
    }
  }

  private flush(): void {
    if (this.closed) return
    const out: Buffer[] = []
    let end = false
    while (this.head < this.slots.length) {
      const slot = this.slots[this.head]!
      if (!slot.done) {
        if (slot.run === undefined) break
        const reply = slot.run()
        if (reply instanceof ErrorReply) this.ctx.counters.errorReplies++
        slot.done = true
        slot.reply = reply
        slot.run = undefined
        this.pendingCount--
      }
      encodeReply(slot.reply, slot.protocol, out)
      this.slots[this.head] = DONE
      this.head++
      if (slot.close) {
        end = true
        break
      }
    }
    if (this.head > 1024 && this.head * 2 > this.slots.length) {
      this.slots.splice(0, this.head)
      this.head = 0
    }
    if (out.length > 0) {
      const more = this.io.write(out)
      if (!more && !this.paused) {
        // The client reads slower than we answer: stop reading until the socket drains.
        this.paused = true
        this.io.pause()
        return
      }
    }
    if (end) {
      this.closed = true
      this.io.end()
      return
    }
    if (this.paused && this.pendingCount < this.ctx.maxPending / 2) {
      this.paused = false
      this.io.resume()
    }
  }
}

const DONE: Slot = { done: true, reply: null, protocol: 2 }
/** `EXEC`'s placeholder: its reply comes from the submitted transaction. */
const SKIP = new Simple('(skip)')

const CONTROL_ARITY: Record<string, number> = {
  PING: -1,
  ECHO: 2,
  QUIT: -1,
  SELECT: 2,
  AUTH: -2,
  HELLO: -1,
  MULTI: 1,
  EXEC: 1,
  DISCARD: 1,
  WATCH: -2,
  UNWATCH: 1,
  CLIENT: -2,
  INFO: -1,
  COMMAND: -1,
  CONFIG: -2,
  TIME: 1,
  LASTSAVE: 1,
  FLUSHALL: -1,
}

/** Key positions (first, last, step) of the data commands, for `COMMAND`. */
function keySpec(name: string): [number, number, number] {
  switch (name) {
    case 'DEL':
    case 'EXISTS':
    case 'MGET':
      return [1, -1, 1]
    case 'MSET':
      return [1, -1, 2]
    case 'RENAME':
      return [1, 2, 1]
    case 'KEYS':
    case 'SCAN':
    case 'DBSIZE':
    case 'FLUSHDB':
      return [0, 0, 0]
    default:
      return [1, 1, 1]
  }
}

function commandInfo(name: string): Reply {
  const data = ARITY[name]
  const arity = data ?? CONTROL_ARITY[name]!
  const flags =
    data === undefined
      ? ['fast', 'loading', 'stale']
      : READS.has(name)
        ? ['readonly', 'fast']
        : ['write', 'denyoom']
  const [first, last, step] = data === undefined ? [0, 0, 0] : keySpec(name)
  return [
    name.toLowerCase(),
    arity,
    new SetReply(flags.map((f) => new Simple(f))),
    first,
    last,
    step,
    new SetReply([]),
    [],
    [],
    [],
  ]
}

const ALL_COMMANDS = [...Object.keys(ARITY), ...Object.keys(CONTROL_ARITY)].sort()

function commandReply(argv: Argv): Reply {
  if (argv.length === 1) return ALL_COMMANDS.map(commandInfo)
  const sub = upper(argv[1]!)
  switch (sub) {
    case 'COUNT':
      return ALL_COMMANDS.length
    case 'LIST':
      return ALL_COMMANDS.map((c) => c.toLowerCase())
    case 'INFO':
      return argv.slice(2).map((a) => {
        const name = upper(a)
        return ALL_COMMANDS.includes(name) ? commandInfo(name) : null
      })
    case 'DOCS':
      // Clients (redis-cli) use the docs for hints only: none is an accepted answer.
      return new MapReply([])
    default:
      return new ErrorReply(`ERR unknown subcommand '${text(argv[1]!)}'. Try COMMAND HELP.`)
  }
}

/** The few settings clients and redis-benchmark ask for; the server's own are its flags. */
const CONFIG: Record<string, string> = {
  save: '',
  appendonly: 'no',
  databases: '1',
  maxmemory: '0',
  'maxmemory-policy': 'noeviction',
  'proto-max-bulk-len': String(512 * 1024 * 1024),
}

function configReply(argv: Argv): Reply {
  const sub = upper(argv[1]!)
  if (sub === 'GET') {
    if (argv.length < 3) return wrongArity('config|get')
    const entries: [Reply, Reply][] = []
    for (const a of argv.slice(2)) {
      const pattern = text(a).toLowerCase()
      const re = new RegExp(
        `^${pattern
          .replace(/[.+^${}()|[\]\\]/g, '\\$&')
          .replace(/\*/g, '.*')
          .replace(/\?/g, '.')}$`,
      )
      for (const [k, v] of Object.entries(CONFIG))
        if (re.test(k) && !entries.some(([e]) => e === k)) entries.push([k, v])
    }
    return new MapReply(entries)
  }
  if (sub === 'SET')
    return new ErrorReply(
      'ERR CONFIG SET is not supported: the directory is configured by its command line',
    )
  if (sub === 'RESETSTAT') return OK
  return new ErrorReply(`ERR unknown subcommand '${text(argv[1]!)}'. Try CONFIG HELP.`)
}
