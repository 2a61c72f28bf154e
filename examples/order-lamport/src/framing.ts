/**
 * Payload framing: `ORDER_CHANNEL · timestamp · count · (length · bytes)×count`, all
 * lengths and the timestamp as unsigned varints. It is the common command batch
 * (`encodeCommandBatch` from `@consul/xkernel/order`) with the sender's Lamport timestamp
 * inserted after the channel byte. An acknowledgement is the same frame with no commands: it
 * must carry a timestamp, because advancing the others' knowledge of this member's clock is
 * its whole purpose.
 */
import {
  DecodeError,
  MessageBuffer,
  ORDER_CHANNEL,
  uvarintLength,
  writeUvarint,
} from '@consul/xkernel'
import { encodeCommandBatch } from '@consul/xkernel/order'

export interface StampedBatch {
  readonly timestamp: number
  /** Empty for an acknowledgement. */
  readonly commands: readonly Uint8Array[]
}

export function encodeStampedBatch(timestamp: number, commands: readonly Uint8Array[]): Uint8Array {
  if (!Number.isSafeInteger(timestamp) || timestamp < 1)
    throw new RangeError(`a Lamport timestamp is an integer >= 1, got ${timestamp}`)
  const batch = encodeCommandBatch(commands)
  const out = new Uint8Array(batch.length + uvarintLength(timestamp))
  out[0] = ORDER_CHANNEL
  out.set(batch.subarray(1), writeUvarint(out, 1, timestamp))
  return out
}

/**
 * `undefined` for a payload on another channel or an empty one (not ours); throws
 * `DecodeError` for a malformed frame.
 */
export function decodeStampedBatch(payload: Uint8Array): StampedBatch | undefined {
  if (payload.length === 0 || payload[0] !== ORDER_CHANNEL) return undefined
  const msg = MessageBuffer.wrap(payload)
  msg.popU8()
  const timestamp = msg.popUvarint()
  if (timestamp < 1) throw new DecodeError('INVALID', 'a Lamport timestamp is at least 1')
  const count = msg.popUvarint()
  if (count > msg.length)
    throw new DecodeError('INVALID', `batch claims ${count} commands in ${payload.length} bytes`)
  const commands: Uint8Array[] = []
  for (let i = 0; i < count; i++) commands.push(msg.popLengthPrefixed())
  if (msg.length !== 0) throw new DecodeError('INVALID', 'trailing bytes after the command batch')
  return { timestamp, commands }
}
