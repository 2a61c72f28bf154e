/**
 * The message buffer: one `Uint8Array` holding `[headroom | message]`, after the x-kernel's
 * `msgPush` / `msgPop`. A protocol on the way down prepends its header into the headroom, and
 * on the way up pops it off the front, so the payload is never copied between layers.
 *
 * Invariant: the readable message is `bytes[start, end)`; `start` only moves left on push
 * and right on pop. Running out of headroom reallocates (geometrically, counted in `regrows`); it
 * never fails. Reading past `end` throws a `DecodeError('TRUNCATED')` — network code catches it and
 * counts a drop.
 */
import { DecodeError } from './errors.js'
import {
  checkUvarint,
  checkVarint,
  readUvarint,
  uvarintLength,
  writeUvarint,
  zigzagDecode,
  zigzagEncode,
} from './varint.js'

const textEncoder = new TextEncoder()
const textDecoder = new TextDecoder('utf-8', { fatal: true })

export const DEFAULT_HEADROOM = 64

/** A non-`Uint8Array` would leave `start`/`end` as NaN and the buffer silently broken. */
function checkBytes(data: unknown): void {
  if (!(data instanceof Uint8Array)) {
    throw new TypeError(`expected a Uint8Array, got ${data === null ? 'null' : typeof data}`)
  }
}

function checkHeadroom(headroom: number): void {
  if (!Number.isSafeInteger(headroom) || headroom < 0) {
    throw new RangeError(`headroom must be a non-negative integer, got ${headroom}`)
  }
}

export class MessageBuffer {
  /** How many times any buffer had to grow its headroom (process-wide, for tuning). */
  static regrows = 0

  private bytes: Uint8Array
  private start: number
  private end: number
  private readonly scratch = { length: 0 }

  private constructor(bytes: Uint8Array, start: number, end: number) {
    this.bytes = bytes
    this.start = start
    this.end = end
  }

  /** An empty message with `headroom` bytes free in front for headers. */
  static empty(headroom = DEFAULT_HEADROOM): MessageBuffer {
    checkHeadroom(headroom)
    const bytes = new Uint8Array(headroom)
    return new MessageBuffer(bytes, headroom, headroom)
  }

  /**
   * A message whose body is a copy of `payload`, with `headroom` bytes free in front. The
   * copy is the only one on the way down.
   */
  static fromPayload(payload: Uint8Array, headroom = DEFAULT_HEADROOM): MessageBuffer {
    checkBytes(payload)
    checkHeadroom(headroom)
    const bytes = new Uint8Array(headroom + payload.length)
    bytes.set(payload, headroom)
    return new MessageBuffer(bytes, headroom, bytes.length)
  }

  /**
   * A message whose body is `bytes[headroom..]`, with `bytes[0, headroom)` free for headers:
   * no copy. Pushes write into that headroom, so the caller may hand the same bytes down again
   * only if every layer pushes the same headers each time (a protocol re-sending a frame it
   * keeps) and must not read them itself.
   */
  static withHeadroom(bytes: Uint8Array, headroom: number): MessageBuffer {
    checkBytes(bytes)
    checkHeadroom(headroom)
    if (headroom > bytes.length) {
      throw new RangeError(`headroom ${headroom} exceeds the ${bytes.length} bytes given`)
    }
    return new MessageBuffer(bytes, headroom, bytes.length)
  }

  /** Wraps received bytes for reading (no copy; the buffer now owns `bytes`). */
  static wrap(bytes: Uint8Array): MessageBuffer {
    checkBytes(bytes)
    return new MessageBuffer(bytes, 0, bytes.length)
  }

  /** A message from UTF-8 text, for tests and examples. */
  static fromString(text: string, headroom = DEFAULT_HEADROOM): MessageBuffer {
    return MessageBuffer.fromPayload(textEncoder.encode(text), headroom)
  }

  get length(): number {
    return this.end - this.start
  }

  get headroom(): number {
    return this.start
  }

  /** The readable message as a view (no copy). Valid until the next push. */
  view(): Uint8Array {
    return this.bytes.subarray(this.start, this.end)
  }

  /** A copy of the readable message. */
  toBytes(): Uint8Array {
    return this.bytes.slice(this.start, this.end)
  }

  /** A second buffer over a copy of the readable message, with fresh headroom. */
  clone(headroom = DEFAULT_HEADROOM): MessageBuffer {
    return MessageBuffer.fromPayload(this.view(), headroom)
  }

  // ---- push (prepend), used on the way down -------------------------------------------

  /** Reserves `n` bytes in front and returns their offset in `raw()`. */
  private reserve(n: number): number {
    if (n > this.start) this.grow(n)
    this.start -= n
    return this.start
  }

  private grow(needed: number): void {
    MessageBuffer.regrows++
    // Grow geometrically, so pushing many headers onto one message stays linear overall.
    const headroom = Math.max(DEFAULT_HEADROOM, needed * 2, this.bytes.length)
    const length = this.end - this.start
    const bytes = new Uint8Array(headroom + length)
    bytes.set(this.bytes.subarray(this.start, this.end), headroom)
    this.bytes = bytes
    this.start = headroom
    this.end = headroom + length
  }

  pushU8(value: number): this {
    if (!Number.isInteger(value) || value < 0 || value > 0xff) {
      throw new RangeError(`u8 value must be an integer in 0..255, got ${value}`)
    }
    const at = this.reserve(1)
    this.bytes[at] = value
    return this
  }

  pushU32(value: number): this {
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
      throw new RangeError(`u32 value must be an integer in 0..2^32-1, got ${value}`)
    }
    const at = this.reserve(4)
    const b = this.bytes
    b[at] = value >>> 24
    b[at + 1] = (value >>> 16) & 0xff
    b[at + 2] = (value >>> 8) & 0xff
    b[at + 3] = value & 0xff
    return this
  }

  pushUvarint(value: number): this {
    checkUvarint(value)
    const at = this.reserve(uvarintLength(value))
    writeUvarint(this.bytes, at, value)
    return this
  }

  /** Pushes a signed integer as a zigzag varint. */
  pushVarint(value: number): this {
    checkVarint(value)
    return this.pushUvarint(zigzagEncode(value))
  }

  /** Prepends raw bytes (a header built with `HeaderWriter`, say). */
  pushBytes(header: Uint8Array): this {
    checkBytes(header)
    const at = this.reserve(header.length)
    this.bytes.set(header, at)
    return this
  }

  /** Prepends bytes together with their varint length, so `popLengthPrefixed` can read them. */
  pushLengthPrefixed(data: Uint8Array): this {
    this.pushBytes(data)
    return this.pushUvarint(data.length)
  }

  // ---- append, used when building a body -------------------------------------------------

  /** Appends bytes at the end of the message (grows the backing array when full). */
  append(data: Uint8Array): this {
    checkBytes(data)
    const needed = this.end + data.length
    if (needed > this.bytes.length) {
      const bytes = new Uint8Array(Math.max(needed, this.bytes.length * 2))
      bytes.set(this.bytes.subarray(0, this.end))
      this.bytes = bytes
    }
    this.bytes.set(data, this.end)
    this.end = needed
    return this
  }

  // ---- pop, used on the way up ---------------------------------------------------------

  private need(n: number, what: string): void {
    if (this.end - this.start < n) {
      throw new DecodeError(
        'TRUNCATED',
        `message truncated: needed ${n} byte(s) for ${what}, ${this.end - this.start} left`,
      )
    }
  }

  popU8(): number {
    this.need(1, 'u8')
    return this.bytes[this.start++]!
  }

  popU32(): number {
    this.need(4, 'u32')
    const b = this.bytes
    const at = this.start
    this.start += 4
    return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0
  }

  popUvarint(): number {
    const value = readUvarint(this.bytes, this.start, this.end, this.scratch)
    this.start += this.scratch.length
    return value
  }

  popVarint(): number {
    return zigzagDecode(this.popUvarint())
  }

  /** Pops `n` bytes as a view into the buffer (no copy). */
  popBytes(n: number): Uint8Array {
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`byte count must be >= 0, got ${n}`)
    this.need(n, `${n}-byte field`)
    const out = this.bytes.subarray(this.start, this.start + n)
    this.start += n
    return out
  }

  popLengthPrefixed(maxLength = Number.MAX_SAFE_INTEGER): Uint8Array {
    const n = this.popUvarint()
    if (n > maxLength) {
      throw new DecodeError('INVALID', `length prefix ${n} exceeds the limit of ${maxLength}`)
    }
    return this.popBytes(n)
  }

  /** Looks at the next byte without consuming it. */
  peekU8(): number {
    this.need(1, 'u8')
    return this.bytes[this.start]!
  }

  /** The rest of the message as UTF-8 text; invalid UTF-8 is a `DecodeError`. */
  readString(): string {
    try {
      return textDecoder.decode(this.view())
    } catch {
      throw new DecodeError('INVALID', 'message body is not valid UTF-8')
    }
  }
}

/**
 * Builds a header front-to-back (fields in reading order) so it can be prepended in one
 * `pushBytes`. Reuse one writer per protocol: `reset()` keeps the backing array.
 */
export class HeaderWriter {
  private bytes: Uint8Array
  private offset = 0

  constructor(initialCapacity = 64) {
    this.bytes = new Uint8Array(initialCapacity)
  }

  reset(): this {
    this.offset = 0
    return this
  }

  get length(): number {
    return this.offset
  }

  private ensure(n: number): void {
    if (this.offset + n <= this.bytes.length) return
    const bytes = new Uint8Array(Math.max(this.bytes.length * 2, this.offset + n))
    bytes.set(this.bytes.subarray(0, this.offset))
    this.bytes = bytes
  }

  u8(value: number): this {
    if (!Number.isInteger(value) || value < 0 || value > 0xff) {
      throw new RangeError(`u8 value must be an integer in 0..255, got ${value}`)
    }
    this.ensure(1)
    this.bytes[this.offset++] = value
    return this
  }

  uvarint(value: number): this {
    checkUvarint(value)
    this.ensure(8)
    this.offset = writeUvarint(this.bytes, this.offset, value)
    return this
  }

  varint(value: number): this {
    checkVarint(value)
    return this.uvarint(zigzagEncode(value))
  }

  bytesField(data: Uint8Array): this {
    checkBytes(data)
    this.uvarint(data.length)
    this.ensure(data.length)
    this.bytes.set(data, this.offset)
    this.offset += data.length
    return this
  }

  /** The header so far, as a view valid until the next write or reset. */
  view(): Uint8Array {
    return this.bytes.subarray(0, this.offset)
  }
}
