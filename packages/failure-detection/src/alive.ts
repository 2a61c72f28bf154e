/**
 * The alive message: `FAILURE_DETECTION_CHANNEL · version · checkpoint position (uvarint)`.
 * Sent as an ordinary Psync message after `aliveEveryMs` of own silence; what it says beyond
 * "I am alive" is what later protocols need (Recovery's prune floor).
 */
import {
  DecodeError,
  FAILURE_DETECTION_CHANNEL,
  readUvarint,
  uvarintLength,
  writeUvarint,
} from '@consul/xkernel'

const VERSION = 1

export function encodeAlive(checkpoint: number): Uint8Array {
  const out = new Uint8Array(2 + uvarintLength(checkpoint))
  out[0] = FAILURE_DETECTION_CHANNEL.id
  out[1] = VERSION
  writeUvarint(out, 2, checkpoint)
  return out
}

/** The checkpoint position an alive message carries; throws `DecodeError` when malformed. */
export function decodeAlive(payload: Uint8Array): { checkpoint: number } {
  if (payload.length < 3 || payload[0] !== FAILURE_DETECTION_CHANNEL.id)
    throw new DecodeError('INVALID', 'not an alive message')
  if (payload[1] !== VERSION)
    throw new DecodeError('INVALID', `alive message version ${payload[1]}`)
  const read = { length: 0 }
  const checkpoint = readUvarint(payload, 2, payload.length, read)
  if (2 + read.length !== payload.length)
    throw new DecodeError('INVALID', 'alive message has trailing bytes')
  return { checkpoint }
}
