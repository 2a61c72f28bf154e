/**
 * The Order's share of a coordinated checkpoint. The delivered sequence is always a prefix
 * of the key order, so the last delivered key says exactly which commands the checkpoint
 * covers: after `restore`, Psync's replay of its log delivers them again and they are
 * skipped by key. The clock is kept too: with a pruned log the replay alone could leave it
 * below stamps this member already sent, and its next stamps must stay above them.
 */
import { OrderError } from '@consul/xkernel/order'
import type { CommandKey } from './stamp.js'

const FORMAT = 'order-lamport'
const VERSION = 1

export interface LamportCheckpoint {
  /** The last delivered command; `undefined` before the first. */
  readonly last: CommandKey | undefined
  readonly delivered: number
  readonly wave: number
  readonly clock: number
}

export function encodeCheckpoint(state: LamportCheckpoint): Uint8Array {
  return new TextEncoder().encode(
    JSON.stringify({
      format: FORMAT,
      v: VERSION,
      last: state.last ?? null,
      delivered: state.delivered,
      wave: state.wave,
      clock: state.clock,
    }),
  )
}

const isCount = (value: unknown): value is number =>
  typeof value === 'number' && Number.isSafeInteger(value) && value >= 0

export function decodeCheckpoint(bytes: Uint8Array): LamportCheckpoint {
  if (!(bytes instanceof Uint8Array))
    throw new OrderError('BAD_CHECKPOINT', 'restore() takes the checkpoint bytes')
  let state: Record<string, unknown>
  try {
    state = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)) as typeof state
  } catch {
    throw new OrderError('BAD_CHECKPOINT', 'not an order-lamport checkpoint')
  }
  if (typeof state !== 'object' || state === null || state.format !== FORMAT)
    throw new OrderError('BAD_CHECKPOINT', 'not an order-lamport checkpoint')
  if (state.v !== VERSION)
    throw new OrderError(
      'BAD_CHECKPOINT',
      `order-lamport checkpoint version ${String(state.v)} is not supported (expected ${VERSION}); upgrade consul-order-lamport`,
    )
  const { last, delivered, wave, clock } = state
  const lastOk =
    last === null ||
    (typeof last === 'object' &&
      last !== undefined &&
      isCount((last as CommandKey).timestamp) &&
      typeof (last as CommandKey).sender === 'string' &&
      isCount((last as CommandKey).index))
  if (!lastOk || !isCount(delivered) || !isCount(wave) || !isCount(clock))
    throw new OrderError('BAD_CHECKPOINT', 'order-lamport checkpoint is corrupted')
  const key = last as CommandKey | null
  return {
    last:
      key === null ? undefined : { timestamp: key.timestamp, sender: key.sender, index: key.index },
    delivered,
    wave,
    clock,
  }
}
