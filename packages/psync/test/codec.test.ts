import { DecodeError } from '@consul/xkernel'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  dataFrameOf,
  decodeFrame,
  encodeAck,
  encodeData,
  encodeDataWithPayload,
  encodeExcluded,
  encodeLeaves,
  encodeRequest,
  encodeRestart,
  KIND_ACK,
  KIND_DATA,
  KIND_EXCLUDED,
  KIND_LEAVES,
  KIND_REQUEST,
  KIND_RESTART,
  MAX_REFS,
  type Ref,
  wireMessage,
} from '../src/codec.js'

const MEMBERS = 5

/** Deps as Psync builds them: at most one per member, own dep below the message's seq. */
const dataArb = fc
  .record({
    sender: fc.integer({ min: 0, max: MEMBERS - 1 }),
    seq: fc.integer({ min: 2, max: 2 ** 40 }),
    depSeqs: fc.array(fc.option(fc.integer({ min: 1, max: 2 ** 40 }), { nil: undefined }), {
      minLength: MEMBERS,
      maxLength: MEMBERS,
    }),
    payload: fc.uint8Array({ maxLength: 200 }),
  })
  .map(({ sender, seq, depSeqs, payload }) => {
    const deps: Ref[] = []
    depSeqs.forEach((s, member) => {
      if (s === undefined) return
      deps.push({ member, seq: member === sender ? Math.min(s, seq - 1) : s })
    })
    return { sender, seq, deps, payload }
  })

describe('psync codec', () => {
  it('round-trips DATA frames', () => {
    fc.assert(
      fc.property(dataArb, ({ sender, seq, deps, payload }) => {
        const frame = decodeFrame(encodeData(sender, seq, deps, payload), MEMBERS)
        expect(frame).toEqual({ kind: KIND_DATA, sender, seq, deps, payload })
      }),
      { numRuns: 2000 },
    )
  })

  it('encodeDataWithPayload: one frame for log and wire, the payload a view of its tail', () => {
    fc.assert(
      fc.property(dataArb, ({ sender, seq, deps, payload }) => {
        const kept = encodeDataWithPayload(sender, seq, deps, payload)
        const fresh = encodeData(sender, seq, deps, payload)
        expect(kept.frame).toEqual(fresh)
        expect(kept.payload).toEqual(payload)
        expect(kept.payload.buffer).toBe(kept.frame.buffer)
        const node = { sender, seq, deps, payload: kept.payload, frame: kept.frame }
        expect(dataFrameOf(node)).toBe(kept.frame)
        // On the wire: the kept frame in place; headers pushed below go into its headroom
        // and leave the frame (and so the payload) as it was.
        const wire = wireMessage(node)
        expect(wire.view()).toEqual(fresh)
        wire.pushU32(0xdeadbeef)
        expect(wire.view().buffer).toBe(kept.frame.buffer)
        expect(kept.frame).toEqual(fresh)
        expect(kept.payload).toEqual(payload)
        // Without a kept frame, a fresh encoding.
        const bare = { sender, seq, deps, payload }
        expect(dataFrameOf(bare)).toEqual(fresh)
        expect(wireMessage(bare).view()).toEqual(fresh)
      }),
      { numRuns: 500 },
    )
  })

  it('round-trips REQUEST, LEAVES and RESTART', () => {
    const refs = fc.array(
      fc.record({
        member: fc.integer({ min: 0, max: MEMBERS - 1 }),
        seq: fc.integer({ min: 1, max: 2 ** 40 }),
      }),
      { maxLength: 50 },
    )
    const have = fc.array(fc.integer({ min: 0, max: 2 ** 40 }), {
      minLength: MEMBERS,
      maxLength: MEMBERS,
    })
    fc.assert(
      fc.property(refs, have, (r, h) => {
        expect(decodeFrame(encodeRequest(r, h), MEMBERS)).toEqual({
          kind: KIND_REQUEST,
          refs: r,
          have: h,
        })
        expect(decodeFrame(encodeLeaves(r, h), MEMBERS)).toEqual({
          kind: KIND_LEAVES,
          refs: r,
          have: h,
        })
        expect(decodeFrame(encodeAck(h), MEMBERS)).toEqual({ kind: KIND_ACK, have: h })
      }),
      { numRuns: 1000 },
    )
    expect(decodeFrame(encodeRestart(), MEMBERS)).toEqual({ kind: KIND_RESTART })
    for (const cut of [0, 1, 2 ** 40])
      expect(decodeFrame(encodeExcluded(cut), MEMBERS)).toEqual({ kind: KIND_EXCLUDED, cut })
    expect(() => decodeFrame(new Uint8Array([...encodeExcluded(3), 0]), MEMBERS)).toThrow(
      DecodeError,
    )
  })

  it('throws only DecodeError for any truncation or random bytes', () => {
    fc.assert(
      fc.property(dataArb, fc.nat(), ({ sender, seq, deps, payload }, cut) => {
        const bytes = encodeData(sender, seq, deps, payload)
        const headerEnd = bytes.length - payload.length
        const truncated = bytes.slice(0, cut % headerEnd)
        expect(() => decodeFrame(truncated, MEMBERS)).toThrow(DecodeError)
      }),
      { numRuns: 2000 },
    )
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        try {
          decodeFrame(bytes, MEMBERS)
        } catch (error) {
          expect(error).toBeInstanceOf(DecodeError)
        }
      }),
      { numRuns: 5000 },
    )
  })

  it('rejects hostile frames: unknown members, seq 0, self-reference, huge lists, two deps on one member', () => {
    const reject = (bytes: Uint8Array, pattern: RegExp) =>
      expect(() => decodeFrame(bytes, MEMBERS)).toThrow(pattern)
    reject(encodeData(7, 1, [], new Uint8Array()), /sender index 7 out of range/)
    reject(
      encodeData(0, 3, [{ member: 9, seq: 1 }], new Uint8Array()),
      /member index 9 out of range/,
    )
    reject(encodeData(1, 3, [{ member: 1, seq: 3 }], new Uint8Array()), /depends on its own sender/)
    reject(encodeData(1, 3, [{ member: 1, seq: 8 }], new Uint8Array()), /depends on its own sender/)
    reject(
      encodeData(
        1,
        3,
        [
          { member: 0, seq: 2 },
          { member: 0, seq: 1 },
        ],
        new Uint8Array(),
      ),
      /two deps on member 0/,
    )
    const many = Array.from({ length: MEMBERS + 1 }, (_, i) => ({ member: i % MEMBERS, seq: 1 }))
    reject(encodeData(0, 9, many, new Uint8Array()), /6 deps for 5 members/)
    reject(new Uint8Array([KIND_DATA, 0, 0, 0]), /start at 1/)
    const tooMany = Array.from({ length: MAX_REFS + 1 }, () => ({ member: 0, seq: 1 }))
    reject(encodeLeaves(tooMany, [0, 0, 0, 0, 0]), /exceed the limit/)
    reject(new Uint8Array([99]), /unknown psync frame kind 99/)
    reject(new Uint8Array([KIND_RESTART, 0]), /trailing bytes/)
  })

  it('keeps the DATA header within 40 bytes at 5 members with every member a leaf', () => {
    const deps = Array.from({ length: 5 }, (_, member) => ({ member, seq: 1_000_000 + member }))
    const bytes = encodeData(
      2,
      1_000_003,
      deps.map((d) => (d.member === 2 ? { member: 2, seq: 1_000_002 } : d)),
      new Uint8Array(),
    )
    expect(bytes.length).toBeLessThanOrEqual(40)
  })
})
