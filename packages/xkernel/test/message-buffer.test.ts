import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  DEFAULT_HEADROOM,
  DecodeError,
  HeaderWriter,
  MAX_VARINT,
  MessageBuffer,
  uvarintLength,
  zigzagEncode,
} from '../src/index.js'

// ---- a model of header fields --------------------------------------------------------------

/** One value as a protocol writes it; a header groups several into one `pushBytes`. */
type Field =
  | { readonly kind: 'u8'; readonly value: number }
  | { readonly kind: 'u32'; readonly value: number }
  | { readonly kind: 'uvarint'; readonly value: number }
  | { readonly kind: 'varint'; readonly value: number }
  | { readonly kind: 'bytes'; readonly value: readonly number[] }

type Op = Field | { readonly kind: 'header'; readonly fields: readonly HeaderField[] }
/** HeaderWriter has no u32 writer. */
type HeaderField = Exclude<Field, { kind: 'u32' }>

const MAX_SIGNED = Math.floor(MAX_VARINT / 2)
const varintEdges = [
  0,
  1,
  127,
  128,
  16_383,
  16_384,
  2 ** 21 - 1,
  2 ** 21,
  2 ** 28 - 1,
  2 ** 28,
  2 ** 31,
  2 ** 32,
  2 ** 35,
  2 ** 49 - 1,
  2 ** 49,
  2 ** 52,
  MAX_VARINT,
]

const arbU8 = fc.integer({ min: 0, max: 255 })
const arbU32 = fc.oneof(
  fc.integer({ min: 0, max: 0xffff_ffff }),
  fc.constantFrom(0, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff),
)
const arbUvarint = fc.oneof(
  fc.integer({ min: 0, max: 20_000 }),
  fc.maxSafeNat(),
  fc.constantFrom(...varintEdges),
)
const arbVarint = fc.oneof(
  fc.integer({ min: -20_000, max: 20_000 }),
  fc.integer({ min: -MAX_SIGNED, max: MAX_SIGNED }),
  fc.constantFrom(MAX_SIGNED, -MAX_SIGNED, -1, -64, -65, 63, 64),
)
const arbBytes = fc.array(arbU8, { maxLength: 40 })

const arbHeaderField: fc.Arbitrary<HeaderField> = fc.oneof(
  arbU8.map((value) => ({ kind: 'u8' as const, value })),
  arbUvarint.map((value) => ({ kind: 'uvarint' as const, value })),
  arbVarint.map((value) => ({ kind: 'varint' as const, value })),
  arbBytes.map((value) => ({ kind: 'bytes' as const, value })),
)
const arbField: fc.Arbitrary<Field> = fc.oneof(
  arbHeaderField,
  arbU32.map((value) => ({ kind: 'u32' as const, value })),
)
const arbOp: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: arbField, weight: 4 },
  {
    arbitrary: fc
      .array(arbHeaderField, { maxLength: 6 })
      .map((fields) => ({ kind: 'header' as const, fields })),
    weight: 1,
  },
)

function pushField(buffer: MessageBuffer, field: Field): void {
  switch (field.kind) {
    case 'u8':
      buffer.pushU8(field.value)
      break
    case 'u32':
      buffer.pushU32(field.value)
      break
    case 'uvarint':
      buffer.pushUvarint(field.value)
      break
    case 'varint':
      buffer.pushVarint(field.value)
      break
    case 'bytes':
      buffer.pushLengthPrefixed(Uint8Array.from(field.value))
      break
  }
}

function writeField(writer: HeaderWriter, field: HeaderField): void {
  switch (field.kind) {
    case 'u8':
      writer.u8(field.value)
      break
    case 'uvarint':
      writer.uvarint(field.value)
      break
    case 'varint':
      writer.varint(field.value)
      break
    case 'bytes':
      writer.bytesField(Uint8Array.from(field.value))
      break
  }
}

/** Pushes ops so that popping reads them in array order: the last op is pushed first. */
function pushAll(buffer: MessageBuffer, ops: readonly Op[], writer = new HeaderWriter(4)): void {
  for (const op of [...ops].reverse()) {
    if (op.kind === 'header') {
      writer.reset()
      for (const field of op.fields) writeField(writer, field)
      buffer.pushBytes(writer.view())
    } else {
      pushField(buffer, op)
    }
  }
}

/** What the reader sees: a header is read field by field, like any other fields. */
function flatten(ops: readonly Op[]): Field[] {
  return ops.flatMap((op): readonly Field[] => (op.kind === 'header' ? op.fields : [op]))
}

function popField(buffer: MessageBuffer, kind: Field['kind']): Field {
  switch (kind) {
    case 'u8':
      return { kind, value: buffer.popU8() }
    case 'u32':
      return { kind, value: buffer.popU32() }
    case 'uvarint':
      return { kind, value: buffer.popUvarint() }
    case 'varint':
      return { kind, value: buffer.popVarint() }
    case 'bytes':
      return { kind, value: Array.from(buffer.popLengthPrefixed()) }
  }
}

function encodedLength(field: Field): number {
  switch (field.kind) {
    case 'u8':
      return 1
    case 'u32':
      return 4
    case 'uvarint':
      return uvarintLength(field.value)
    case 'varint':
      return uvarintLength(zigzagEncode(field.value))
    case 'bytes':
      return uvarintLength(field.value.length) + field.value.length
  }
}

function catchError(run: () => unknown): unknown {
  try {
    run()
  } catch (error) {
    return error
  }
  throw new Error('expected a throw')
}

// ---- properties -----------------------------------------------------------------------------

describe('MessageBuffer push/pop', () => {
  it('round-trips any sequence of fields and headers, pushed in reverse and popped in order', () => {
    fc.assert(
      fc.property(
        fc.array(arbOp, { maxLength: 25 }),
        fc.array(arbU8, { maxLength: 30 }),
        fc.integer({ min: 0, max: 80 }),
        (ops, payload, headroom) => {
          const buffer = MessageBuffer.fromPayload(Uint8Array.from(payload), headroom)
          pushAll(buffer, ops)
          const fields = flatten(ops)
          const total = fields.reduce((n, f) => n + encodedLength(f), 0)
          expect(buffer.length).toBe(total + payload.length)
          for (const field of fields) expect(popField(buffer, field.kind)).toEqual(field)
          expect(Array.from(buffer.view())).toEqual(payload)
          expect(buffer.length).toBe(payload.length)
        },
      ),
      { numRuns: 3000 },
    )
  })

  it('regrows the headroom exactly when the headers do not fit, keeping the payload', () => {
    fc.assert(
      fc.property(
        fc.array(arbOp, { minLength: 1, maxLength: 25 }),
        fc.array(arbU8, { maxLength: 30 }),
        fc.integer({ min: 0, max: 40 }),
        (ops, payload, headroom) => {
          const before = MessageBuffer.regrows
          const buffer = MessageBuffer.fromPayload(Uint8Array.from(payload), headroom)
          pushAll(buffer, ops)
          const headerBytes = buffer.length - payload.length
          if (headerBytes <= headroom) {
            expect(MessageBuffer.regrows).toBe(before)
            expect(buffer.headroom).toBe(headroom - headerBytes)
          } else {
            expect(MessageBuffer.regrows).toBeGreaterThan(before)
          }
          for (const field of flatten(ops)) expect(popField(buffer, field.kind)).toEqual(field)
          expect(Array.from(buffer.view())).toEqual(payload)
        },
      ),
      { numRuns: 2000 },
    )
  })

  it('survives many regrows from zero headroom', () => {
    const before = MessageBuffer.regrows
    const buffer = MessageBuffer.fromString('body', 0)
    for (let i = 0; i < 5000; i++) buffer.pushU32(i * 7919)
    expect(MessageBuffer.regrows).toBeGreaterThan(before)
    for (let i = 4999; i >= 0; i--) expect(buffer.popU32()).toBe(i * 7919)
    expect(buffer.readString()).toBe('body')
  })

  it('makes every truncation of a valid encoding throw DecodeError TRUNCATED, never a wrong value', () => {
    fc.assert(
      fc.property(fc.array(arbOp, { minLength: 1, maxLength: 12 }), (ops) => {
        const buffer = MessageBuffer.empty(0)
        pushAll(buffer, ops)
        const bytes = buffer.toBytes()
        const fields = flatten(ops)
        const ends: number[] = []
        let offset = 0
        for (const field of fields) ends.push((offset += encodedLength(field)))
        for (let cut = 0; cut < bytes.length; cut++) {
          const truncated = MessageBuffer.wrap(bytes.slice(0, cut))
          // The first field that does not fit in `cut` bytes is where decoding must stop.
          const failAt = ends.findIndex((end) => end > cut)
          const popped = fields.slice(0, failAt).map((field) => popField(truncated, field.kind))
          // Cheap comparison first: this loop runs for every cut of every sample.
          if (JSON.stringify(popped) !== JSON.stringify(fields.slice(0, failAt))) {
            expect(popped).toEqual(fields.slice(0, failAt))
          }
          const error = catchError(() => popField(truncated, fields[failAt]!.kind))
          if (!(error instanceof DecodeError) || error.code !== 'TRUNCATED') {
            expect.fail(`cut ${cut} of ${JSON.stringify(fields)}: ${String(error)}`)
          }
        }
      }),
      { numRuns: 1500 },
    )
  })

  it('decodes random bytes to values in range or to a DecodeError, nothing else', () => {
    const kinds = ['u8', 'u32', 'uvarint', 'varint', 'bytes', 'bounded', 'peek', 'string'] as const
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 24 }),
        fc.array(fc.constantFrom(...kinds), { minLength: 1, maxLength: 10 }),
        (bytes, reads) => {
          const buffer = MessageBuffer.wrap(bytes)
          for (const kind of reads) {
            const before = buffer.length
            let value: unknown
            try {
              switch (kind) {
                case 'u8':
                case 'u32':
                case 'uvarint':
                case 'varint':
                case 'bytes':
                  value = popField(buffer, kind).value
                  break
                case 'bounded':
                  value = Array.from(buffer.popLengthPrefixed(3))
                  break
                case 'peek':
                  value = buffer.peekU8()
                  break
                case 'string':
                  value = buffer.readString()
                  break
              }
            } catch (error) {
              expect(error).toBeInstanceOf(DecodeError)
              expect(['TRUNCATED', 'VARINT_OVERFLOW', 'INVALID']).toContain(
                (error as DecodeError).code,
              )
              return
            }
            switch (kind) {
              case 'u8':
              case 'peek':
                expect(value).toSatisfy((v: number) => Number.isInteger(v) && v >= 0 && v <= 255)
                break
              case 'u32':
                expect(value).toSatisfy((v: number) => Number.isInteger(v) && v >= 0 && v < 2 ** 32)
                break
              case 'uvarint':
                expect(value).toSatisfy((v: number) => Number.isSafeInteger(v) && v >= 0)
                break
              case 'varint':
                expect(value).toSatisfy((v: number) => Number.isSafeInteger(v))
                break
              case 'bytes':
                expect((value as number[]).length).toBeLessThan(before)
                break
              case 'bounded':
                expect((value as number[]).length).toBeLessThanOrEqual(3)
                break
              case 'string':
                expect(typeof value).toBe('string')
                break
            }
            // Reads consume what they read and nothing on failure (checked above by return).
            if (kind === 'peek' || kind === 'string') expect(buffer.length).toBe(before)
            else expect(buffer.length).toBeLessThan(before)
          }
        },
      ),
      { numRuns: 5000 },
    )
  })
})

describe('HeaderWriter', () => {
  it('writes exactly the bytes the matching pushes produce', () => {
    fc.assert(
      fc.property(fc.array(arbHeaderField, { maxLength: 20 }), (fields) => {
        const writer = new HeaderWriter(1)
        for (const field of fields) writeField(writer, field)
        const pushed = MessageBuffer.empty(0)
        for (const field of [...fields].reverse()) pushField(pushed, field)
        expect(Array.from(writer.view())).toEqual(Array.from(pushed.view()))
        expect(writer.length).toBe(pushed.length)
      }),
      { numRuns: 2000 },
    )
  })

  it('reset() starts a new header over the same storage', () => {
    const writer = new HeaderWriter()
    writer.u8(1).uvarint(300).varint(-2)
    expect(Array.from(writer.view())).toEqual([1, 0xac, 0x02, 3])
    writer.reset()
    expect(writer.length).toBe(0)
    writer.u8(9)
    expect(Array.from(writer.view())).toEqual([9])
  })

  it('rejects out-of-range values with RangeError and writes nothing', () => {
    const writer = new HeaderWriter()
    writer.u8(7)
    for (const bad of [-1, 256, 1.5, Number.NaN]) expect(() => writer.u8(bad)).toThrow(RangeError)
    for (const bad of [-1, 2 ** 53, 0.5, Number.POSITIVE_INFINITY, Number.NaN]) {
      expect(() => writer.uvarint(bad)).toThrow(RangeError)
    }
    for (const bad of [2 ** 52, -(2 ** 52), 0.5, Number.NaN]) {
      expect(() => writer.varint(bad)).toThrow(RangeError)
    }
    expect(() => writer.bytesField('abc' as unknown as Uint8Array)).toThrow(TypeError)
    expect(Array.from(writer.view())).toEqual([7])
  })
})

describe('MessageBuffer API', () => {
  it('uses big-endian u32 and LEB128 varints on the wire', () => {
    const buffer = MessageBuffer.empty()
      .pushLengthPrefixed(Uint8Array.of(9, 9))
      .pushVarint(-3)
      .pushUvarint(300)
      .pushU32(0x01020304)
      .pushU8(0xff)
    expect(Array.from(buffer.view())).toEqual([0xff, 1, 2, 3, 4, 0xac, 0x02, 5, 2, 9, 9])
  })

  it('starts with the default headroom and wraps received bytes without copying', () => {
    expect(MessageBuffer.empty().headroom).toBe(DEFAULT_HEADROOM)
    expect(MessageBuffer.fromString('x').headroom).toBe(DEFAULT_HEADROOM)
    const bytes = Uint8Array.of(1, 2, 3)
    const wrapped = MessageBuffer.wrap(bytes)
    expect(wrapped.headroom).toBe(0)
    expect(wrapped.view().buffer).toBe(bytes.buffer)
  })

  it('view() aliases the buffer, toBytes() and clone() copy it', () => {
    const buffer = MessageBuffer.fromString('abc')
    const view = buffer.view()
    const copy = buffer.toBytes()
    const clone = buffer.clone(3)
    view[0] = 0x7a // 'z'
    expect(buffer.readString()).toBe('zbc')
    expect(new TextDecoder().decode(copy)).toBe('abc')
    expect(clone.readString()).toBe('abc')
    expect(clone.headroom).toBe(3)
  })

  it('fromPayload copies the payload', () => {
    const payload = Uint8Array.of(1, 2)
    const buffer = MessageBuffer.fromPayload(payload)
    payload[0] = 99
    expect(Array.from(buffer.view())).toEqual([1, 2])
  })

  it('withHeadroom wraps without copying and pushes headers into the given headroom', () => {
    const bytes = Uint8Array.of(0, 0, 0, 0, 7, 8)
    const buffer = MessageBuffer.withHeadroom(bytes, 4)
    expect(buffer.headroom).toBe(4)
    expect(Array.from(buffer.view())).toEqual([7, 8])
    buffer.pushU32(0x01020304)
    expect(buffer.view().buffer).toBe(bytes.buffer) // no copy, no regrow
    expect(Array.from(bytes)).toEqual([1, 2, 3, 4, 7, 8])
    // Sending the same frame again with the same header leaves its bytes as they were.
    MessageBuffer.withHeadroom(bytes, 4).pushU32(0x01020304)
    expect(Array.from(bytes)).toEqual([1, 2, 3, 4, 7, 8])
    expect(() => MessageBuffer.withHeadroom(bytes, 7)).toThrow(
      'headroom 7 exceeds the 6 bytes given',
    )
    expect(() => MessageBuffer.withHeadroom(bytes, -1)).toThrow(RangeError)
    expect(() => MessageBuffer.withHeadroom('x' as never, 0)).toThrow(TypeError)
  })

  it('append() extends the body and keeps the headroom usable', () => {
    const buffer = MessageBuffer.empty(2)
    for (let i = 0; i < 100; i++) buffer.append(Uint8Array.of(i))
    buffer.pushU8(200)
    expect(buffer.length).toBe(101)
    expect(buffer.popU8()).toBe(200)
    expect(Array.from(buffer.popBytes(100))).toEqual([...Array(100).keys()])
    expect(buffer.length).toBe(0)
  })

  it('popBytes returns a view and peekU8 does not consume', () => {
    const buffer = MessageBuffer.wrap(Uint8Array.of(5, 6, 7))
    expect(buffer.peekU8()).toBe(5)
    expect(buffer.length).toBe(3)
    expect(Array.from(buffer.popBytes(2))).toEqual([5, 6])
    expect(Array.from(buffer.popBytes(0))).toEqual([])
    expect(buffer.length).toBe(1)
  })

  it('readString rejects invalid UTF-8 with DecodeError INVALID', () => {
    const error = catchError(() => MessageBuffer.wrap(Uint8Array.of(0x61, 0xff)).readString())
    expect(error).toBeInstanceOf(DecodeError)
    expect((error as DecodeError).code).toBe('INVALID')
    expect(MessageBuffer.fromString('héllo 😀').readString()).toBe('héllo 😀')
  })

  it('popLengthPrefixed enforces maxLength with DecodeError INVALID', () => {
    const buffer = MessageBuffer.empty().pushLengthPrefixed(new Uint8Array(10))
    const error = catchError(() => buffer.popLengthPrefixed(9))
    expect((error as DecodeError).code).toBe('INVALID')
    expect(
      MessageBuffer.empty().pushLengthPrefixed(new Uint8Array(10)).popLengthPrefixed(10),
    ).toHaveLength(10)
  })

  it('a length prefix larger than the rest is TRUNCATED', () => {
    const buffer = MessageBuffer.wrap(Uint8Array.of(5, 1, 2))
    const error = catchError(() => buffer.popLengthPrefixed())
    expect((error as DecodeError).code).toBe('TRUNCATED')
  })

  it('rejects out-of-range pushes with RangeError and leaves the message unchanged', () => {
    const buffer = MessageBuffer.fromString('keep', 8)
    const cases: [string, (v: number) => unknown, number[]][] = [
      ['u8', (v) => buffer.pushU8(v), [-1, 256, 1.5, Number.NaN, Number.POSITIVE_INFINITY]],
      ['u32', (v) => buffer.pushU32(v), [-1, 2 ** 32, 0.5, Number.NaN]],
      ['uvarint', (v) => buffer.pushUvarint(v), [-1, MAX_VARINT + 1, 2 ** 60, 0.5, Number.NaN]],
      ['varint', (v) => buffer.pushVarint(v), [MAX_SIGNED + 1, -MAX_SIGNED - 1, 0.5, Number.NaN]],
    ]
    for (const [, push, values] of cases) {
      for (const value of values) expect(() => push(value)).toThrow(RangeError)
    }
    fc.assert(
      fc.property(
        fc.oneof(fc.integer({ max: -1 }), fc.integer({ min: 256 }), fc.double({ noInteger: true })),
        (value) => {
          expect(() => buffer.pushU8(value)).toThrow(RangeError)
        },
      ),
    )
    expect(() => buffer.popBytes(-1)).toThrow(RangeError)
    expect(() => buffer.popBytes(0.5)).toThrow(RangeError)
    expect(buffer.headroom).toBe(8)
    expect(buffer.readString()).toBe('keep')
  })

  it('accepts the signed and unsigned extremes', () => {
    const buffer = MessageBuffer.empty()
      .pushVarint(-MAX_SIGNED)
      .pushVarint(MAX_SIGNED)
      .pushUvarint(MAX_VARINT)
      .pushU32(0xffff_ffff)
    expect(buffer.popU32()).toBe(0xffff_ffff)
    expect(buffer.popUvarint()).toBe(MAX_VARINT)
    expect(buffer.popVarint()).toBe(MAX_SIGNED)
    expect(buffer.popVarint()).toBe(-MAX_SIGNED)
  })

  it('rejects non-bytes and bad headroom with TypeError / RangeError', () => {
    const buffer = MessageBuffer.fromString('x')
    const notBytes = [[1, 2], 'ab', 3, null, undefined] as unknown as Uint8Array[]
    for (const value of notBytes) {
      expect(() => buffer.pushBytes(value)).toThrow(TypeError)
      expect(() => buffer.pushLengthPrefixed(value)).toThrow(TypeError)
      expect(() => buffer.append(value)).toThrow(TypeError)
      expect(() => MessageBuffer.wrap(value)).toThrow(TypeError)
      expect(() => MessageBuffer.fromPayload(value)).toThrow(TypeError)
    }
    expect(buffer.readString()).toBe('x')
    for (const headroom of [-1, 1.5, Number.NaN]) {
      expect(() => MessageBuffer.empty(headroom)).toThrow(RangeError)
      expect(() => MessageBuffer.fromString('x', headroom)).toThrow(RangeError)
    }
  })
})
