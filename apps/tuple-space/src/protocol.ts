/**
 * The client protocol: newline-delimited JSON over TCP. Each line is one JSON object; a
 * request carries a client-chosen `id` (a string or a safe integer) that its reply echoes, so a
 * client may pipeline — replies come in any order (a blocking `in` is a request whose reply
 * comes later). Values travel as JSON strings, numbers, booleans and `null`; bytes as
 * `{ "$bytes": "<base64>" }`; a template's formals as `{ "formal": "<type>" }`.
 *
 * ```text
 * → {"id":1,"op":"out","tuple":["task",7,{"$bytes":"AQI="}]}
 * ← {"id":1,"ok":true}
 * → {"id":2,"op":"in","template":["task",{"formal":"int"},{"formal":"bytes"}]}
 * ← {"id":2,"ok":true,"tuple":["task",7,{"$bytes":"AQI="}]}
 * → {"id":3,"op":"inp","template":["nothing"]}
 * ← {"id":3,"ok":true,"tuple":null}
 * → {"id":4,"op":"in","template":["later"]}
 * → {"id":5,"op":"cancel","target":4}
 * ← {"id":5,"ok":true,"cancelled":true}
 * ← {"id":4,"ok":false,"error":{"code":"CANCELLED","message":"cancelled: it took nothing"}}
 * → {"id":6,"op":"nope"}
 * ← {"id":6,"ok":false,"error":{"code":"UNKNOWN_OP","message":"…"}}
 * ```
 */
import { TupleSpaceError } from './errors.js'
import {
  isFormal,
  type Template,
  type TemplateField,
  type Tuple,
  type Value,
  validateTemplate,
  validateTuple,
} from './tuple.js'

export const OPS = ['out', 'in', 'rd', 'inp', 'rdp', 'cancel', 'info'] as const
export type Op = (typeof OPS)[number]
export type RequestId = string | number

export type Request =
  | { readonly id: RequestId; readonly op: 'out'; readonly tuple: Tuple }
  | {
      readonly id: RequestId
      readonly op: 'in' | 'rd' | 'inp' | 'rdp'
      readonly template: Template
    }
  | { readonly id: RequestId; readonly op: 'cancel'; readonly target: RequestId }
  | { readonly id: RequestId; readonly op: 'info' }

export interface ErrorBody {
  readonly code: string
  readonly message: string
}

/** Most characters of a string request id. */
export const MAX_ID_LENGTH = 256

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

/** A value as JSON: bytes as `{ $bytes: base64 }`. */
export function valueToJson(value: Value): unknown {
  return value instanceof Uint8Array ? { $bytes: Buffer.from(value).toString('base64') } : value
}

export function tupleToJson(tuple: Tuple): unknown[] {
  return tuple.map(valueToJson)
}

export function templateToJson(template: Template): unknown[] {
  return template.map((f) => (isFormal(f) ? { formal: f.formal } : valueToJson(f as Value)))
}

/** `{ $bytes }` objects become bytes; everything else is left for the validators to judge. */
function fromJson(x: unknown, code: 'BAD_TUPLE' | 'BAD_TEMPLATE', i: number): unknown {
  if (typeof x !== 'object' || x === null || Array.isArray(x) || !Object.hasOwn(x, '$bytes'))
    return x
  const keys = Object.keys(x)
  const b64 = (x as { $bytes: unknown }).$bytes
  if (keys.length !== 1 || typeof b64 !== 'string' || !BASE64.test(b64))
    throw new TupleSpaceError(
      code,
      `field ${i}: bytes are { "$bytes": "<base64>" } (padded standard base64, no other keys)`,
    )
  const buf = Buffer.from(b64, 'base64')
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength)
}

/** A JSON tuple checked and decoded (`BAD_TUPLE`, `TOO_LARGE`). */
export function tupleFromJson(x: unknown): Tuple {
  if (!Array.isArray(x)) return validateTuple(x)
  return validateTuple(x.map((f, i) => fromJson(f, 'BAD_TUPLE', i)))
}

/** A JSON template checked and decoded (`BAD_TEMPLATE`, `TOO_LARGE`). */
export function templateFromJson(x: unknown): Template {
  if (!Array.isArray(x)) return validateTemplate(x)
  return validateTemplate(x.map((f, i) => fromJson(f, 'BAD_TEMPLATE', i) as TemplateField))
}

export function isRequestId(x: unknown): x is RequestId {
  return (typeof x === 'string' && x.length <= MAX_ID_LENGTH) || Number.isSafeInteger(x)
}

/** What a line that is no request is: the error to answer with, and the id if it had one. */
export interface BadRequest {
  readonly id: RequestId | null
  readonly error: TupleSpaceError
}

/** Parses one line (without its newline). */
export function parseRequest(line: string): Request | BadRequest {
  let value: unknown
  try {
    value = JSON.parse(line)
  } catch (error) {
    return {
      id: null,
      error: new TupleSpaceError(
        'BAD_FRAME',
        `not JSON: ${error instanceof Error ? error.message : String(error)}`,
      ),
    }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return { id: null, error: new TupleSpaceError('BAD_FRAME', 'a frame is one JSON object') }
  const o = value as Record<string, unknown>
  if (!isRequestId(o.id))
    return {
      id: null,
      error: new TupleSpaceError(
        'BAD_REQUEST',
        `a request has an "id": a string of at most ${MAX_ID_LENGTH} characters or a safe integer`,
      ),
    }
  const id = o.id
  const op = o.op
  if (typeof op !== 'string' || !(OPS as readonly string[]).includes(op))
    return {
      id,
      error: new TupleSpaceError(
        'UNKNOWN_OP',
        `op ${JSON.stringify(op) ?? 'undefined'} is not one of ${OPS.join(', ')}`,
      ),
    }
  try {
    switch (op as Op) {
      case 'out':
        if (!Object.hasOwn(o, 'tuple'))
          throw new TupleSpaceError('BAD_REQUEST', 'out takes a "tuple"')
        return { id, op: 'out', tuple: tupleFromJson(o.tuple) }
      case 'in':
      case 'rd':
      case 'inp':
      case 'rdp':
        if (!Object.hasOwn(o, 'template'))
          throw new TupleSpaceError('BAD_REQUEST', `${op} takes a "template"`)
        return {
          id,
          op: op as 'in' | 'rd' | 'inp' | 'rdp',
          template: templateFromJson(o.template),
        }
      case 'cancel':
        if (!isRequestId(o.target))
          throw new TupleSpaceError('BAD_REQUEST', 'cancel takes the "target" request id')
        return { id, op: 'cancel', target: o.target }
      case 'info':
        return { id, op: 'info' }
    }
  } catch (error) {
    return {
      id,
      error: TupleSpaceError.isInstance(error)
        ? error
        : new TupleSpaceError('INTERNAL', String(error)),
    }
  }
}

export function okReply(id: RequestId, body: Record<string, unknown> = {}): string {
  return `${JSON.stringify({ id, ok: true, ...body })}\n`
}

export function errorReply(id: RequestId | null, error: TupleSpaceError): string {
  return `${JSON.stringify({ id, ok: false, error: { code: error.code, message: error.message } })}\n`
}

/**
 * Splits a byte stream into lines (LF; a CR before it is dropped), at most `maxBytes` each: a
 * longer line is reported once (`onTooLong`) and skipped up to its end.
 */
export class LineSplitter {
  private parts: Buffer[] = []
  private length = 0
  private skipping = false

  constructor(
    private readonly maxBytes: number,
    private readonly onLine: (line: string) => void,
    private readonly onTooLong: () => void,
  ) {}

  push(chunk: Buffer): void {
    let start = 0
    for (;;) {
      const nl = chunk.indexOf(10, start)
      const end = nl < 0 ? chunk.length : nl
      if (!this.skipping) {
        const piece = chunk.subarray(start, end)
        if (this.length + piece.length > this.maxBytes) {
          this.skipping = true
          this.parts = []
          this.length = 0
          this.onTooLong()
        } else if (piece.length > 0) {
          this.parts.push(piece)
          this.length += piece.length
        }
      }
      if (nl < 0) return
      if (!this.skipping) {
        let line = Buffer.concat(this.parts, this.length).toString('utf8')
        if (line.endsWith('\r')) line = line.slice(0, -1)
        this.parts = []
        this.length = 0
        if (line.trim().length > 0) this.onLine(line)
      }
      this.skipping = false
      start = nl + 1
    }
  }
}
