/**
 * The frames of a join.
 *
 * On the group's **lobby** (`SessionContext.claimLobby`, `Host.lobby`: datagrams of the port
 * from hosts outside the conversation):
 *
 *   JOIN    "J" 1 · configuration+1 u32            asker → member: take me in (0: I am in no
 *                                                  configuration of this group yet)
 *   WELCOME "J" 2 · configuration u32 · members    member → asker: you are a member of this
 *                                                  configuration; open it (and fetch its state)
 *   REFUSED "J" 3 · reason (UTF-8)                 member → asker: this group cannot take you
 *
 * In the conversation, as an ordinary Psync message on `RECOVERY_CHANNEL` (so it has a wave,
 * the same at every member):
 *
 *   REQUEST channel · "J" · 1 · joiner · members   a member asks for the next configuration:
 *                                                  `members` (its view and the joiner)
 *
 * Names are u16 length + UTF-8; a member list is u16 count + names, canonical order, no
 * repeats. Every decoder throws `DecodeError` on anything else.
 */
import { DecodeError, type NodeId, RECOVERY_CHANNEL } from '@consul/xkernel'

const LOBBY = 0x4a // 'J'
export const JOIN = 1
export const WELCOME = 2
export const REFUSED = 3
const REQUEST_VERSION = 1
/** A bound on names and lists a frame may carry (a datagram's worth). */
const MAX_NAME = 1024
const MAX_MEMBERS = 1024

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

export type LobbyFrame =
  | { readonly kind: typeof JOIN; readonly configuration: number | undefined }
  | {
      readonly kind: typeof WELCOME
      readonly configuration: number
      readonly members: readonly NodeId[]
    }
  | { readonly kind: typeof REFUSED; readonly reason: string }

export interface JoinRequest {
  readonly joiner: NodeId
  /** The configuration it asks for: the sender's view and the joiner, canonical order. */
  readonly members: readonly NodeId[]
}

class Writer {
  private parts: Uint8Array[] = []
  private size = 0
  bytes(b: Uint8Array): this {
    this.parts.push(b)
    this.size += b.length
    return this
  }
  u8(v: number): this {
    return this.bytes(Uint8Array.of(v))
  }
  u16(v: number): this {
    return this.bytes(Uint8Array.of(v >>> 8, v & 0xff))
  }
  u32(v: number): this {
    const b = new Uint8Array(4)
    new DataView(b.buffer).setUint32(0, v)
    return this.bytes(b)
  }
  name(n: string): this {
    const b = encoder.encode(n)
    if (b.length === 0 || b.length > MAX_NAME)
      throw new RangeError(`member name of ${b.length} bytes`)
    return this.u16(b.length).bytes(b)
  }
  names(list: readonly string[]): this {
    if (list.length > MAX_MEMBERS) throw new RangeError(`${list.length} members`)
    this.u16(list.length)
    for (const n of list) this.name(n)
    return this
  }
  done(): Uint8Array {
    const out = new Uint8Array(this.size)
    let at = 0
    for (const p of this.parts) {
      out.set(p, at)
      at += p.length
    }
    return out
  }
}

class Reader {
  private at = 0
  private readonly view: DataView
  constructor(private readonly b: Uint8Array) {
    this.view = new DataView(b.buffer, b.byteOffset, b.byteLength)
  }
  private need(n: number): void {
    if (this.at + n > this.b.length) throw new DecodeError('TRUNCATED', 'join frame truncated')
  }
  u8(): number {
    this.need(1)
    return this.b[this.at++]!
  }
  u16(): number {
    this.need(2)
    const v = this.view.getUint16(this.at)
    this.at += 2
    return v
  }
  u32(): number {
    this.need(4)
    const v = this.view.getUint32(this.at)
    this.at += 4
    return v
  }
  name(): string {
    const n = this.u16()
    if (n === 0 || n > MAX_NAME) throw new DecodeError('INVALID', 'bad member name length')
    this.need(n)
    let s: string
    try {
      s = decoder.decode(this.b.subarray(this.at, this.at + n))
    } catch {
      throw new DecodeError('INVALID', 'member name is not UTF-8')
    }
    this.at += n
    return s
  }
  names(): NodeId[] {
    const count = this.u16()
    if (count === 0 || count > MAX_MEMBERS) throw new DecodeError('INVALID', 'bad member count')
    const out: NodeId[] = []
    for (let i = 0; i < count; i++) {
      const n = this.name()
      // Canonical order, no repeats: what every member computes the same list from.
      if (i > 0 && !(out[i - 1]! < n))
        throw new DecodeError('INVALID', 'members not in canonical order')
      out.push(n)
    }
    return out
  }
  rest(): Uint8Array {
    const out = this.b.subarray(this.at)
    this.at = this.b.length
    return out
  }
  end(): void {
    if (this.at !== this.b.length) throw new DecodeError('INVALID', 'trailing bytes in join frame')
  }
}

const canonical = (members: readonly NodeId[]): NodeId[] => [...new Set(members)].sort()

export const encodeJoin = (configuration: number | undefined): Uint8Array =>
  new Writer()
    .u8(LOBBY)
    .u8(JOIN)
    .u32(configuration === undefined ? 0 : configuration + 1)
    .done()

export const encodeWelcome = (configuration: number, members: readonly NodeId[]): Uint8Array =>
  new Writer().u8(LOBBY).u8(WELCOME).u32(configuration).names(canonical(members)).done()

export const encodeRefused = (reason: string): Uint8Array =>
  new Writer()
    .u8(LOBBY)
    .u8(REFUSED)
    .bytes(encoder.encode(reason.slice(0, 400)))
    .done()

/** A lobby frame; `undefined` for a datagram of some other use of the lobby. */
export function decodeLobby(bytes: Uint8Array): LobbyFrame | undefined {
  if (bytes.length < 2 || bytes[0] !== LOBBY) return undefined
  const r = new Reader(bytes)
  r.u8()
  const kind = r.u8()
  if (kind === JOIN) {
    const c = r.u32()
    r.end()
    return { kind: JOIN, configuration: c === 0 ? undefined : c - 1 }
  }
  if (kind === WELCOME) {
    const configuration = r.u32()
    const members = r.names()
    r.end()
    return { kind: WELCOME, configuration, members }
  }
  if (kind === REFUSED) {
    let reason: string
    try {
      reason = decoder.decode(r.rest())
    } catch {
      throw new DecodeError('INVALID', 'refusal is not UTF-8')
    }
    return { kind: REFUSED, reason }
  }
  throw new DecodeError('INVALID', `unknown join frame kind ${kind}`)
}

export const encodeRequest = (request: JoinRequest): Uint8Array =>
  new Writer()
    .u8(RECOVERY_CHANNEL.id)
    .u8(LOBBY)
    .u8(REQUEST_VERSION)
    .name(request.joiner)
    .names(canonical(request.members))
    .done()

/**
 * A join request carried by a Psync message's payload; `undefined` for any other payload
 * (a wave acknowledgement, another channel); throws `DecodeError` for a malformed one.
 */
export function decodeRequest(payload: Uint8Array): JoinRequest | undefined {
  if (payload.length < 2 || payload[0] !== RECOVERY_CHANNEL.id || payload[1] !== LOBBY)
    return undefined
  const r = new Reader(payload)
  r.u8()
  r.u8()
  if (r.u8() !== REQUEST_VERSION) throw new DecodeError('INVALID', 'unknown join request version')
  const joiner = r.name()
  const members = r.names()
  r.end()
  if (!members.includes(joiner)) throw new DecodeError('INVALID', 'the joiner is not in its list')
  return { joiner, members }
}
