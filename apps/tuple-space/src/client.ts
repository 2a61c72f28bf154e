/**
 * The typed client: one TCP connection to one replica, requests pipelined by id.
 * `in(['task', formal.int])` resolves with a value of type `['task', number]`.
 */
import { connect as connectTcp, type Socket } from 'node:net'
import { TupleSpaceError, type TupleSpaceErrorCode } from './errors.js'
import { LineSplitter, type RequestId, templateToJson, tupleToJson } from './protocol.js'
import {
  type Matched,
  type Template,
  type Tuple,
  type Value,
  validateTemplate,
  validateTuple,
} from './tuple.js'

export interface ConnectOptions {
  readonly port: number
  /** Default `127.0.0.1`. */
  readonly host?: string
}

export interface WaitOptions {
  /**
   * Gives up on a blocking `in`/`rd`: the server cancels it, and the promise rejects with
   * `CANCELLED` (it took nothing) — or resolves with the tuple, if the server had taken it
   * before the cancel arrived.
   */
  readonly signal?: AbortSignal
}

/** What `info()` answers. */
export interface ReplicaInfo {
  readonly replica: string
  readonly recovery: string
  readonly tuples: number | null
  readonly waiters: number | null
  readonly [key: string]: unknown
}

export interface TupleSpace {
  /** Adds a tuple; resolves once the group holds it (its command is safe). */
  out(tuple: Tuple): Promise<void>
  /** Takes the first matching tuple (the oldest); waits until there is one. */
  in<const T extends Template>(template: T, options?: WaitOptions): Promise<Matched<T>>
  /** Reads the first matching tuple without taking it; waits until there is one. */
  rd<const T extends Template>(template: T, options?: WaitOptions): Promise<Matched<T>>
  /** Takes the first matching tuple, or `undefined` if none is there now. */
  inp<const T extends Template>(template: T): Promise<Matched<T> | undefined>
  /** Reads the first matching tuple, or `undefined` if none is there now. */
  rdp<const T extends Template>(template: T): Promise<Matched<T> | undefined>
  /** The replica's name, recovery state, tuple and waiter counts. */
  info(): Promise<ReplicaInfo>
  /** Closes the connection; pending requests reject with `CONNECTION_CLOSED` (and are cancelled). */
  close(): Promise<void>
  /** Resolves when the connection closes (by either side). */
  readonly closed: Promise<void>
}

interface Reply {
  readonly id: RequestId | null
  readonly ok: boolean
  readonly tuple?: unknown[] | null
  readonly error?: { code: string; message: string }
  readonly [key: string]: unknown
}

function decodeValue(x: unknown): Value {
  if (
    typeof x === 'object' &&
    x !== null &&
    typeof (x as { $bytes?: unknown }).$bytes === 'string'
  ) {
    const buf = Buffer.from((x as { $bytes: string }).$bytes, 'base64')
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength)
  }
  return x as Value
}

/** Connects to a replica's TCP port. Rejects if it cannot connect. */
export function connect(options: ConnectOptions): Promise<TupleSpace> {
  return new Promise((resolve, reject) => {
    const socket: Socket = connectTcp({ port: options.port, host: options.host ?? '127.0.0.1' })
    socket.setNoDelay(true)
    const pending = new Map<RequestId, { resolve(r: Reply): void; reject(e: Error): void }>()
    let nextId = 1
    let open = false
    let resolveClosed!: () => void
    const closed = new Promise<void>((r) => (resolveClosed = r))
    const splitter = new LineSplitter(
      64 * 1024 * 1024,
      (line) => {
        let reply: Reply
        try {
          reply = JSON.parse(line) as Reply
        } catch {
          return
        }
        if (reply.id === null) return // an error about a frame we never sent
        const p = pending.get(reply.id)
        if (p === undefined) return
        pending.delete(reply.id)
        if (reply.ok) p.resolve(reply)
        else
          p.reject(
            new TupleSpaceError(
              (reply.error?.code ?? 'INTERNAL') as TupleSpaceErrorCode,
              reply.error?.message ?? 'no message',
            ),
          )
      },
      () => {},
    )
    socket.on('data', (chunk: Buffer) => splitter.push(chunk))
    socket.on('error', (error) => {
      if (!open) reject(error)
    })
    socket.on('close', () => {
      open = false
      for (const p of pending.values())
        p.reject(new TupleSpaceError('CONNECTION_CLOSED', 'the connection to the replica closed'))
      pending.clear()
      resolveClosed()
    })
    const request = (body: Record<string, unknown>, signal?: AbortSignal): Promise<Reply> => {
      if (!open)
        return Promise.reject(new TupleSpaceError('CONNECTION_CLOSED', 'the connection is closed'))
      const id = nextId++
      return new Promise<Reply>((res, rej) => {
        if (signal?.aborted) {
          rej(new TupleSpaceError('CANCELLED', 'aborted before it was sent'))
          return
        }
        const onAbort = () => {
          if (pending.has(id) && open)
            socket.write(`${JSON.stringify({ id: nextId++, op: 'cancel', target: id })}\n`)
        }
        // Settled: the listener goes (a long-lived signal would otherwise hold one per request).
        const done = () => signal?.removeEventListener('abort', onAbort)
        pending.set(id, {
          resolve: (r) => {
            done()
            res(r)
          },
          reject: (e) => {
            done()
            rej(e)
          },
        })
        socket.write(`${JSON.stringify({ id, ...body })}\n`)
        signal?.addEventListener('abort', onAbort, { once: true })
      })
    }
    const take =
      (op: 'in' | 'rd' | 'inp' | 'rdp') =>
      async (template: Template, opts?: WaitOptions): Promise<never> => {
        const t = templateToJson(validateTemplate(template))
        const reply = await request({ op, template: t }, opts?.signal)
        return (
          reply.tuple === null || reply.tuple === undefined
            ? undefined
            : reply.tuple.map(decodeValue)
        ) as never
      }
    const client: TupleSpace = {
      out: async (tuple) => {
        await request({ op: 'out', tuple: tupleToJson(validateTuple(tuple)) })
      },
      in: take('in'),
      rd: take('rd'),
      inp: take('inp'),
      rdp: take('rdp'),
      info: async () => {
        const { id: _id, ok: _ok, ...rest } = await request({ op: 'info' })
        return rest as unknown as ReplicaInfo
      },
      close: () => {
        socket.end()
        return closed
      },
      closed,
    }
    socket.once('connect', () => {
      open = true
      resolve(client)
    })
  })
}
