/**
 * The common command framing: a command's id (`<psync message id>/<index in the message>`)
 * and the command batch `ORDER_CHANNEL · count · (length · bytes)×count`. Orders may use it
 * or frame their own after the channel byte (the Lamport example inserts its timestamp).
 * Malformed bytes throw `DecodeError`; the Order counts and drops them.
 */
import { DecodeError } from '../errors.js'
import { MessageBuffer } from '../message-buffer.js'
import { ORDER_CHANNEL } from '../order-spec.js'
import type { MessageId } from '../psync-control.js'
import { uvarintLength, writeUvarint } from '../varint.js'

/** `<message>/<index>` */
export function commandId(message: MessageId, index: number): string {
  return `${message}/${index}`
}

/** The common command batch: `ORDER_CHANNEL · count · (length · bytes)×count`. */
export function encodeCommandBatch(commands: readonly Uint8Array[]): Uint8Array {
  let size = 1 + uvarintLength(commands.length)
  for (const c of commands) size += uvarintLength(c.length) + c.length
  const out = new Uint8Array(size)
  out[0] = ORDER_CHANNEL
  let at = writeUvarint(out, 1, commands.length)
  for (const c of commands) {
    at = writeUvarint(out, at, c.length)
    out.set(c, at)
    at += c.length
  }
  return out
}

/**
 * Decodes a command batch; `undefined` for a payload on another channel or an empty
 * acknowledgement; throws `DecodeError` for a malformed batch.
 */
export function decodeCommandBatch(payload: Uint8Array): Uint8Array[] | undefined {
  if (payload.length === 0 || payload[0] !== ORDER_CHANNEL) return undefined
  const msg = MessageBuffer.wrap(payload)
  msg.popU8()
  const count = msg.popUvarint()
  if (count > payload.length)
    throw new DecodeError('INVALID', `batch claims ${count} commands in ${payload.length} bytes`)
  const out: Uint8Array[] = []
  for (let i = 0; i < count; i++) out.push(msg.popLengthPrefixed())
  if (msg.length !== 0) throw new DecodeError('INVALID', 'trailing bytes after the command batch')
  return out
}
