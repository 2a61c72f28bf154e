/**
 * A Dispatcher command on the wire — the bytes the Order carries:
 * msgpack `[1, tag, args, nonce]`. `tag` is the command's name (a string: no numbering to
 * keep stable across versions), `args` its arguments, `nonce` the submitter's own number for
 * the submit (only the submitter reads it: it finds its pending promise by it; handlers never
 * see it). Encoding uses msgpack without shared record structures, so every replica decodes
 * every command on its own, in any order.
 */
import { Packr } from 'msgpackr'

const VERSION = 1
const packr = new Packr({ useRecords: false, moreTypes: false, structuredClone: false })

export interface WireCommand {
  readonly tag: string
  readonly args: unknown
  readonly nonce: number
}

/**
 * Throws for what msgpack would silently turn into something else: functions, symbols (and
 * anything nested deeper than 100 levels, which is a cycle or a mistake).
 */
function checkEncodable(value: unknown, depth = 0): void {
  if (depth > 100) throw new Error('nested more than 100 levels deep (a cycle?)')
  if (typeof value === 'function') throw new Error('a function cannot be sent')
  if (typeof value === 'symbol') throw new Error('a symbol cannot be sent')
  if (typeof value !== 'object' || value === null || ArrayBuffer.isView(value)) return
  if (value instanceof Map)
    for (const [k, v] of value) {
      checkEncodable(k, depth + 1)
      checkEncodable(v, depth + 1)
    }
  else for (const v of Object.values(value)) checkEncodable(v, depth + 1)
}

/** Encodes a command; throws (a plain `Error`) for arguments msgpack cannot carry faithfully. */
export function encodeCommand(command: WireCommand): Uint8Array {
  checkEncodable(command.args)
  return packr.pack([VERSION, command.tag, command.args, command.nonce])
}

/** The command, or a reason it is not one. */
export function decodeCommand(bytes: Uint8Array): WireCommand | string {
  let value: unknown
  try {
    value = packr.unpack(bytes)
  } catch (error) {
    return `not msgpack (${error instanceof Error ? error.message : String(error)})`
  }
  if (!Array.isArray(value) || value.length !== 4) return 'not a [version, tag, args, nonce] array'
  const [version, tag, args, nonce] = value as unknown[]
  if (version !== VERSION) return `version ${String(version)}`
  if (typeof tag !== 'string') return 'tag is not a string'
  if (typeof nonce !== 'number' || !Number.isSafeInteger(nonce) || nonce < 0)
    return 'nonce is not a natural number'
  return { tag, args, nonce }
}

export function encodeValue(value: unknown): Uint8Array {
  checkEncodable(value)
  return packr.pack(value)
}

export function decodeValue(bytes: Uint8Array): unknown {
  return packr.unpack(bytes)
}
