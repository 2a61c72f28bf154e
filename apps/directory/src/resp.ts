/**
 * The Redis protocol (RESP2, and RESP3 after `HELLO 3`): an incremental request parser and a
 * reply encoder.
 *
 * Requests are what clients send: arrays of bulk strings (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`)
 * or inline commands (`PING\r\n`, what a person types over telnet). The parser takes the bytes
 * as they arrive, in chunks of any size, and returns every complete command; a protocol error
 * is final for the connection (Redis replies `-ERR Protocol error: …` and closes it).
 */

/** A command as the client sent it: the name and its arguments, as bytes. */
export type Argv = Buffer[]

/**
 * A protocol error: the connection gets `-ERR Protocol error: <message>` and is closed.
 * `before` holds the commands the same `push` completed before the broken part: they are
 * valid requests and are still served (as Redis serves what precedes bad framing).
 */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError'
  before: Argv[] = []
}

export interface ParserLimits {
  /** Most bytes of one bulk string (Redis's `proto-max-bulk-len`; default 512 MiB). */
  readonly maxBulkBytes?: number
  /** Most arguments of one command (default 1,048,576). */
  readonly maxArgs?: number
  /** Most bytes of an inline command line (Redis: 64 KiB). */
  readonly maxInlineBytes?: number
}

const CR = 13
const LF = 10

/** Parses requests from a byte stream; `push(chunk)` returns the commands it completed. */
export class RequestParser {
  private buffer: Buffer = Buffer.alloc(0)
  private offset = 0
  private readonly maxBulk: number
  private readonly maxArgs: number
  private readonly maxInline: number
  // A multibulk being read: its arguments so far and how many are left.
  private args: Buffer[] | undefined
  private left = 0

  constructor(limits: ParserLimits = {}) {
    this.maxBulk = limits.maxBulkBytes ?? 512 * 1024 * 1024
    this.maxArgs = limits.maxArgs ?? 1024 * 1024
    this.maxInline = limits.maxInlineBytes ?? 64 * 1024
  }

  /**
   * Feeds bytes; returns every command now complete, in order. Throws `ProtocolError` (with
   * the commands completed before the broken part in `before`); the parser is unusable after.
   */
  push(chunk: Buffer): Argv[] {
    if (this.offset >= this.buffer.length) {
      this.buffer = chunk
    } else {
      this.buffer = Buffer.concat([this.buffer.subarray(this.offset), chunk])
    }
    this.offset = 0
    const out: Argv[] = []
    try {
      for (;;) {
        const command = this.next()
        if (command === undefined) break
        if (command.length > 0) out.push(command) // an empty inline line is skipped, as Redis does
      }
    } catch (error) {
      if (error instanceof ProtocolError) error.before = out
      throw error
    }
    return out
  }

  private line(from: number): number {
    const end = this.buffer.indexOf(LF, from)
    return end
  }

  private next(): Argv | undefined {
    const b = this.buffer
    if (this.args === undefined) {
      if (this.offset >= b.length) return undefined
      if (b[this.offset] !== 0x2a /* '*' */) return this.inline()
      const end = this.line(this.offset)
      if (end < 0) {
        if (b.length - this.offset > 64 * 1024)
          throw new ProtocolError('too big mbulk count string')
        return undefined
      }
      const n = this.integer(this.offset + 1, end, 'invalid multibulk length')
      this.offset = end + 1
      if (n > this.maxArgs) throw new ProtocolError('invalid multibulk length')
      if (n <= 0) return []
      this.args = []
      this.left = n
    }
    while (this.left > 0) {
      if (this.offset >= b.length) return undefined
      if (b[this.offset] !== 0x24 /* '$' */) {
        throw new ProtocolError(`expected '$', got '${String.fromCharCode(b[this.offset]!)}'`)
      }
      const end = this.line(this.offset)
      if (end < 0) {
        if (b.length - this.offset > 64 * 1024) throw new ProtocolError('too big bulk count string')
        return undefined
      }
      const n = this.integer(this.offset + 1, end, 'invalid bulk length')
      if (n < 0 || n > this.maxBulk) throw new ProtocolError('invalid bulk length')
      if (end + 1 + n + 2 > b.length) return undefined
      if (b[end + 1 + n] !== CR || b[end + 2 + n] !== LF) {
        throw new ProtocolError('bulk string not terminated by CRLF')
      }
      // A copy: the chunk's memory is not kept alive by one small argument.
      this.args!.push(Buffer.from(b.subarray(end + 1, end + 1 + n)))
      this.offset = end + 3 + n
      this.left--
    }
    const args = this.args!
    this.args = undefined
    return args
  }

  private integer(from: number, end: number, message: string): number {
    const stop = end > from && this.buffer[end - 1] === CR ? end - 1 : end
    const text = this.buffer.toString('latin1', from, stop)
    if (!/^-?\d{1,12}$/.test(text)) throw new ProtocolError(message)
    return Number(text)
  }

  private inline(): Argv | undefined {
    const end = this.line(this.offset)
    if (end < 0) {
      if (this.buffer.length - this.offset > this.maxInline) {
        throw new ProtocolError('too big inline request')
      }
      return undefined
    }
    const stop = end > this.offset && this.buffer[end - 1] === CR ? end - 1 : end
    const text = this.buffer.toString('latin1', this.offset, stop)
    this.offset = end + 1
    return splitInline(text).map((s) => Buffer.from(s, 'latin1'))
  }
}

/** Splits an inline command as Redis's `sdssplitargs` does: spaces, "double" and 'single' quotes. */
export function splitInline(text: string): string[] {
  const out: string[] = []
  let i = 0
  while (i < text.length) {
    while (i < text.length && /\s/.test(text[i]!)) i++
    if (i >= text.length) break
    let arg = ''
    const quote = text[i] === '"' || text[i] === "'" ? text[i++] : undefined
    for (;;) {
      if (i >= text.length) {
        if (quote !== undefined) throw new ProtocolError('unbalanced quotes in request')
        break
      }
      const c = text[i]!
      if (quote === undefined) {
        if (/\s/.test(c)) break
        arg += c
        i++
      } else if (c === quote) {
        i++
        if (i < text.length && !/\s/.test(text[i]!)) {
          throw new ProtocolError('unbalanced quotes in request')
        }
        break
      } else if (quote === '"' && c === '\\' && i + 1 < text.length) {
        const e = text[i + 1]!
        const hex = text.slice(i + 2, i + 4)
        if (e === 'x' && /^[0-9a-fA-F]{2}$/.test(hex)) {
          arg += String.fromCharCode(Number.parseInt(hex, 16))
          i += 4
        } else {
          arg +=
            ({ n: '\n', r: '\r', t: '\t', b: '\b', a: '\x07' } as Record<string, string>)[e] ?? e
          i += 2
        }
      } else if (quote === "'" && c === '\\' && text[i + 1] === "'") {
        arg += "'"
        i += 2
      } else {
        arg += c
        i++
      }
    }
    out.push(arg)
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// Replies

/** `+OK`: a simple string reply. */
export class Simple {
  constructor(readonly text: string) {}
}
/** `-ERR …`: an error reply; `message` starts with its code (`ERR`, `WRONGTYPE`, …). */
export class ErrorReply {
  constructor(readonly message: string) {}
}
/** A map (RESP3 `%`; a flat array in RESP2). */
export class MapReply {
  constructor(readonly entries: ReadonlyArray<readonly [Reply, Reply]>) {}
}
/** A set (RESP3 `~`; an array in RESP2). */
export class SetReply {
  constructor(readonly items: readonly Reply[]) {}
}
/** A verbatim text (RESP3 `=txt:`; a bulk string in RESP2) — what `INFO` replies. */
export class Verbatim {
  constructor(readonly text: string) {}
}
/** A null array (`*-1` in RESP2, `_` in RESP3): what `EXEC` replies after an aborted `WATCH`. */
export const NULL_ARRAY = Symbol('null array')

/**
 * A reply: `Simple`, `ErrorReply`, an integer (`number` or `bigint`), a bulk string (`Buffer`,
 * or a JS `string` sent as UTF-8), `null` (the null bulk string), an array, a map, a set, a
 * boolean (RESP3 `#`; `:1`/`:0` in RESP2), a verbatim text or `NULL_ARRAY`.
 */
export type Reply =
  | Simple
  | ErrorReply
  | number
  | bigint
  | Buffer
  | string
  | null
  | boolean
  | typeof NULL_ARRAY
  | MapReply
  | SetReply
  | Verbatim
  | readonly Reply[]

export const OK = new Simple('OK')
export const QUEUED = new Simple('QUEUED')
export const PONG = new Simple('PONG')

/** Appends a reply's bytes in the given protocol version (2 or 3) to `out`. */
export function encodeReply(reply: Reply, protocol: 2 | 3, out: Buffer[]): void {
  if (reply === null) {
    out.push(protocol === 3 ? NULL3 : NULL_BULK)
  } else if (reply instanceof Buffer) {
    out.push(Buffer.from(`$${reply.length}\r\n`, 'latin1'), reply, CRLF)
  } else if (typeof reply === 'string') {
    const bytes = Buffer.from(reply, 'utf8')
    out.push(Buffer.from(`$${bytes.length}\r\n`, 'latin1'), bytes, CRLF)
  } else if (typeof reply === 'number' || typeof reply === 'bigint') {
    out.push(Buffer.from(`:${reply}\r\n`, 'latin1'))
  } else if (typeof reply === 'boolean') {
    out.push(
      Buffer.from(protocol === 3 ? (reply ? '#t\r\n' : '#f\r\n') : reply ? ':1\r\n' : ':0\r\n'),
    )
  } else if (reply === NULL_ARRAY) {
    out.push(protocol === 3 ? NULL3 : NULL_ARRAY2)
  } else if (reply instanceof Simple) {
    out.push(Buffer.from(`+${clean(reply.text)}\r\n`, 'utf8'))
  } else if (reply instanceof ErrorReply) {
    out.push(Buffer.from(`-${clean(reply.message)}\r\n`, 'utf8'))
  } else if (reply instanceof MapReply) {
    out.push(
      Buffer.from(
        protocol === 3 ? `%${reply.entries.length}\r\n` : `*${reply.entries.length * 2}\r\n`,
      ),
    )
    for (const [k, v] of reply.entries) {
      encodeReply(k, protocol, out)
      encodeReply(v, protocol, out)
    }
  } else if (reply instanceof SetReply) {
    out.push(Buffer.from(`${protocol === 3 ? '~' : '*'}${reply.items.length}\r\n`))
    for (const item of reply.items) encodeReply(item, protocol, out)
  } else if (reply instanceof Verbatim) {
    const bytes = Buffer.from(reply.text, 'utf8')
    if (protocol === 3) {
      out.push(Buffer.from(`=${bytes.length + 4}\r\ntxt:`, 'latin1'), bytes, CRLF)
    } else {
      out.push(Buffer.from(`$${bytes.length}\r\n`, 'latin1'), bytes, CRLF)
    }
  } else {
    const items = reply as readonly Reply[]
    out.push(Buffer.from(`*${items.length}\r\n`, 'latin1'))
    for (const item of items) encodeReply(item, protocol, out)
  }
}

/** A simple string or error must not break the line. */
function clean(text: string): string {
  return text.replace(/[\r\n]+/g, ' ')
}

const CRLF = Buffer.from('\r\n')
const NULL_BULK = Buffer.from('$-1\r\n')
const NULL_ARRAY2 = Buffer.from('*-1\r\n')
const NULL3 = Buffer.from('_\r\n')
