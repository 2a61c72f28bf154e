/**
 * Psync's wire format. Members are named by their index in the conversation's member list
 * (every member opens the conversation with the same list), so a reference to a message is
 * two varints. Every decoder checks bounds and throws `DecodeError`, which the session
 * counts as a drop; nothing malformed reaches the graph.
 *
 *   DATA     kind=1 · sender · seq · ndeps · (member · seq)×ndeps · payload…
 *   REQUEST  kind=2 · n · (member · seq)×n · have×members
 *            "send me these messages, and what I lack of their past: I have every message
 *             of member p up to have[p]"
 *   RESTART  kind=3                                 "I restarted: tell me your leaves"
 *   LEAVES   kind=4 · n · (member · seq)×n · have×members
 *            the answer to RESTART: the responder's leaves, and how far it holds every
 *            member's messages (the restarted member's own included: what it sent before
 *            the crash and may have lost from its log)
 *   ACK      kind=5 · have×members                  "I already have that": stops re-sends
 *                                                    to a member that has nothing to say
 *   EXCLUDED kind=6 · cut                           "the group excluded you, with this cut"
 *   DIRECT   kind=7 · payload…                      a datagram for a protocol above, point
 *                                                    to point, outside the conversation
 *
 * Invariants checked here: member indexes < member count, seq ≥ 1, a DATA message has at
 * most one dep per member (deps are leaves, and a sender's messages form a chain), no dep on
 * the message itself or on a later message of its own sender, list lengths within limits.
 */
import { DEFAULT_HEADROOM, DecodeError, HeaderWriter, MessageBuffer } from '@consul/xkernel'

export const KIND_DATA = 1
export const KIND_REQUEST = 2
export const KIND_RESTART = 3
export const KIND_LEAVES = 4
export const KIND_ACK = 5
export const KIND_EXCLUDED = 6
export const KIND_DIRECT = 7

/** A message reference on the wire: member index and sequence number. */
export interface Ref {
  readonly member: number
  readonly seq: number
}

export interface DataFrame {
  readonly kind: typeof KIND_DATA
  readonly sender: number
  readonly seq: number
  readonly deps: readonly Ref[]
  readonly payload: Uint8Array
}

export interface RequestFrame {
  readonly kind: typeof KIND_REQUEST
  readonly refs: readonly Ref[]
  /** have[p]: the requester holds every message of member p up to this seq. */
  readonly have: readonly number[]
}

export interface LeavesFrame {
  readonly kind: typeof KIND_LEAVES
  readonly refs: readonly Ref[]
  /** have[p]: the responder holds every message of member p up to this seq. */
  readonly have: readonly number[]
}

export interface RestartFrame {
  readonly kind: typeof KIND_RESTART
}

export interface AckFrame {
  readonly kind: typeof KIND_ACK
  /** have[p]: the sender holds every message of member p up to this seq. */
  readonly have: readonly number[]
}

/** "The group excluded you, with this cut": to a member the sender has excluded. */
export interface ExcludedFrame {
  readonly kind: typeof KIND_EXCLUDED
  readonly cut: number
}

/** A datagram for a protocol above (`sendDirect`): Psync only carries it. */
export interface DirectFrame {
  readonly kind: typeof KIND_DIRECT
  readonly payload: Uint8Array
}

export type Frame =
  | DataFrame
  | RequestFrame
  | LeavesFrame
  | RestartFrame
  | AckFrame
  | ExcludedFrame
  | DirectFrame

/** Most references one REQUEST or LEAVES frame may carry. */
export const MAX_REFS = 1024

const writer = new HeaderWriter(128)

/**
 * The DATA frame in a fresh buffer after `headroom` free bytes; the payload is appended after
 * the header without an extra copy of it.
 */
function encodeDataAt(
  headroom: number,
  sender: number,
  seq: number,
  deps: readonly Ref[],
  payload: Uint8Array,
): Uint8Array {
  writer.reset().u8(KIND_DATA).uvarint(sender).uvarint(seq).uvarint(deps.length)
  for (const dep of deps) writer.uvarint(dep.member).uvarint(dep.seq)
  const header = writer.view()
  const out = new Uint8Array(headroom + header.length + payload.length)
  out.set(header, headroom)
  out.set(payload, headroom + header.length)
  return out
}

/** Encodes DATA. */
export function encodeData(
  sender: number,
  seq: number,
  deps: readonly Ref[],
  payload: Uint8Array,
): Uint8Array {
  return encodeDataAt(0, sender, seq, deps, payload)
}

/** Bytes kept free in front of a kept frame for the headers pushed below Psync. */
const FRAME_HEADROOM = DEFAULT_HEADROOM

/**
 * `encodeData` into a buffer with `FRAME_HEADROOM` free bytes in front, plus the payload as a
 * view of the frame's tail: one copy of the payload serves the graph (the payload), the log
 * (the frame) and the wire (`wireMessage`).
 */
export function encodeDataWithPayload(
  sender: number,
  seq: number,
  deps: readonly Ref[],
  payload: Uint8Array,
): { readonly frame: Uint8Array; readonly payload: Uint8Array } {
  const bytes = encodeDataAt(FRAME_HEADROOM, sender, seq, deps, payload)
  return {
    frame: bytes.subarray(FRAME_HEADROOM),
    payload: bytes.subarray(bytes.length - payload.length),
  }
}

interface FrameSource {
  readonly sender: number
  readonly seq: number
  readonly deps: readonly Ref[]
  readonly payload: Uint8Array
  readonly frame?: Uint8Array | undefined
}

/** A node's DATA frame: the one it keeps, or a fresh encoding. */
export function dataFrameOf(node: FrameSource): Uint8Array {
  return node.frame ?? encodeData(node.sender, node.seq, node.deps, node.payload)
}

/**
 * A node's DATA frame as a message to send: the kept frame in place (its headroom takes the
 * headers, which are the same on every send), or a fresh copy.
 */
export function wireMessage(node: FrameSource): MessageBuffer {
  const frame = node.frame
  if (frame !== undefined && frame.byteOffset === FRAME_HEADROOM) {
    const bytes = new Uint8Array(frame.buffer, 0, FRAME_HEADROOM + frame.length)
    return MessageBuffer.withHeadroom(bytes, FRAME_HEADROOM)
  }
  return MessageBuffer.fromPayload(dataFrameOf(node))
}

function encodeRefsAndHave(
  kind: typeof KIND_REQUEST | typeof KIND_LEAVES,
  refs: readonly Ref[],
  have: readonly number[],
): Uint8Array {
  writer.reset().u8(kind).uvarint(refs.length)
  for (const ref of refs) writer.uvarint(ref.member).uvarint(ref.seq)
  for (const seq of have) writer.uvarint(seq)
  return writer.view().slice()
}

export function encodeLeaves(refs: readonly Ref[], have: readonly number[]): Uint8Array {
  return encodeRefsAndHave(KIND_LEAVES, refs, have)
}

export function encodeRequest(refs: readonly Ref[], have: readonly number[]): Uint8Array {
  return encodeRefsAndHave(KIND_REQUEST, refs, have)
}

export function encodeAck(have: readonly number[]): Uint8Array {
  writer.reset().u8(KIND_ACK)
  for (const seq of have) writer.uvarint(seq)
  return writer.view().slice()
}

export function encodeRestart(): Uint8Array {
  return new Uint8Array([KIND_RESTART])
}

/** DIRECT: the payload copied once into a buffer with headroom, the kind byte pushed in front. */
export function directMessage(payload: Uint8Array): MessageBuffer {
  const msg = MessageBuffer.fromPayload(payload)
  msg.pushU8(KIND_DIRECT)
  return msg
}

export function encodeExcluded(cut: number): Uint8Array {
  writer.reset().u8(KIND_EXCLUDED).uvarint(cut)
  return writer.view().slice()
}

function readRef(msg: MessageBuffer, members: number): Ref {
  const member = msg.popUvarint()
  if (member >= members)
    throw new DecodeError('INVALID', `member index ${member} out of range (${members} members)`)
  const seq = msg.popUvarint()
  if (seq < 1) throw new DecodeError('INVALID', 'sequence numbers start at 1')
  return { member, seq }
}

/** Decodes one frame; throws `DecodeError` for anything malformed or out of range. */
export function decodeFrame(bytes: Uint8Array | MessageBuffer, members: number): Frame {
  const msg = bytes instanceof MessageBuffer ? bytes : MessageBuffer.wrap(bytes)
  const kind = msg.popU8()
  switch (kind) {
    case KIND_DATA: {
      const sender = msg.popUvarint()
      if (sender >= members) throw new DecodeError('INVALID', `sender index ${sender} out of range`)
      const seq = msg.popUvarint()
      if (seq < 1) throw new DecodeError('INVALID', 'sequence numbers start at 1')
      const n = msg.popUvarint()
      if (n > members) throw new DecodeError('INVALID', `${n} deps for ${members} members`)
      const deps: Ref[] = []
      const seen = new Set<number>()
      for (let i = 0; i < n; i++) {
        const dep = readRef(msg, members)
        if (seen.has(dep.member))
          throw new DecodeError('INVALID', `two deps on member ${dep.member}`)
        seen.add(dep.member)
        if (dep.member === sender && dep.seq >= seq) {
          throw new DecodeError(
            'INVALID',
            `message ${sender}:${seq} depends on its own sender's ${dep.seq}`,
          )
        }
        deps.push(dep)
      }
      return { kind: KIND_DATA, sender, seq, deps, payload: msg.view() }
    }
    case KIND_REQUEST:
    case KIND_LEAVES: {
      const n = msg.popUvarint()
      if (n > MAX_REFS)
        throw new DecodeError('INVALID', `${n} references exceed the limit of ${MAX_REFS}`)
      const refs: Ref[] = []
      for (let i = 0; i < n; i++) refs.push(readRef(msg, members))
      const have: number[] = []
      for (let i = 0; i < members; i++) have.push(msg.popUvarint())
      if (msg.length !== 0)
        throw new DecodeError('INVALID', 'trailing bytes after the reference list')
      return { kind, refs, have }
    }
    case KIND_ACK: {
      const have: number[] = []
      for (let i = 0; i < members; i++) have.push(msg.popUvarint())
      if (msg.length !== 0) throw new DecodeError('INVALID', 'trailing bytes after ACK')
      return { kind: KIND_ACK, have }
    }
    case KIND_RESTART:
      if (msg.length !== 0) throw new DecodeError('INVALID', 'trailing bytes after RESTART')
      return { kind: KIND_RESTART }
    case KIND_EXCLUDED: {
      const cut = msg.popUvarint()
      if (msg.length !== 0) throw new DecodeError('INVALID', 'trailing bytes after EXCLUDED')
      return { kind: KIND_EXCLUDED, cut }
    }
    case KIND_DIRECT:
      return { kind: KIND_DIRECT, payload: msg.view() }
    default:
      throw new DecodeError('INVALID', `unknown psync frame kind ${kind}`)
  }
}
