/**
 * The join frames (lobby JOIN / WELCOME / REFUSED, and the join request in the conversation):
 * round trips, and bad input — every truncation, trailing bytes, every flipped byte, random
 * bytes — is a `DecodeError` or another use of the channel, never anything else.
 */
import { DecodeError, RECOVERY_CHANNEL } from '@consul/xkernel'
import { describe, expect, it } from 'vitest'
import {
  decodeLobby,
  decodeRequest,
  encodeJoin,
  encodeRefused,
  encodeRequest,
  encodeWelcome,
} from '../src/join-codec.js'

/** Runs `decode`; true when it returned, false for a DecodeError; rethrows anything else. */
function decodes(decode: () => unknown): boolean {
  try {
    decode()
    return true
  } catch (error) {
    if (DecodeError.isInstance(error)) return false
    throw error
  }
}

describe('join frames', () => {
  it('round trip', () => {
    expect(decodeLobby(encodeJoin(undefined))).toEqual({ kind: 1, configuration: undefined })
    expect(decodeLobby(encodeJoin(0))).toEqual({ kind: 1, configuration: 0 })
    expect(decodeLobby(encodeJoin(7))).toEqual({ kind: 1, configuration: 7 })
    expect(decodeLobby(encodeWelcome(3, ['c', 'a', 'b']))).toEqual({
      kind: 2,
      configuration: 3,
      members: ['a', 'b', 'c'],
    })
    expect(decodeLobby(encodeRefused('no holdAfter'))).toEqual({
      kind: 3,
      reason: 'no holdAfter',
    })
    expect(decodeRequest(encodeRequest({ joiner: 'n4', members: ['n2', 'n1', 'n4'] }))).toEqual({
      joiner: 'n4',
      members: ['n1', 'n2', 'n4'],
    })
    // Other uses of the lobby, and other payloads of the recovery channel: not join frames.
    expect(decodeLobby(Uint8Array.of(0x52, 1))).toBeUndefined()
    expect(decodeRequest(Uint8Array.of(RECOVERY_CHANNEL.id))).toBeUndefined()
    expect(decodeRequest(Uint8Array.of(1, 2, 3))).toBeUndefined()
  })

  it('every truncation and trailing bytes are refused with DecodeError', () => {
    const frames = [
      encodeJoin(2),
      encodeWelcome(1, ['a', 'bb', 'ccc']),
      encodeRequest({ joiner: 'x', members: ['a', 'x'] }),
    ]
    for (const f of frames) {
      const decode = f === frames[2] ? decodeRequest : decodeLobby
      for (let n = 2; n < f.length; n++) expect(decodes(() => decode(f.subarray(0, n)))).toBe(false)
      const longer = new Uint8Array(f.length + 1)
      longer.set(f)
      expect(decodes(() => decode(longer))).toBe(false)
    }
  })

  it('a request whose joiner is not in its list, lists out of canonical order or with repeats, and unknown kinds or versions are refused', () => {
    const request = encodeRequest({ joiner: 'x', members: ['a', 'x'] })
    const notIn = encodeRequest({ joiner: 'x', members: ['a', 'x'] })
    // Rename the joiner inside the frame ('x' → 'y'): no longer in the list.
    notIn[5] = 'y'.charCodeAt(0)
    expect(decodes(() => decodeRequest(notIn))).toBe(false)
    const badVersion = request.slice()
    badVersion[2] = 9
    expect(decodes(() => decodeRequest(badVersion))).toBe(false)
    const welcome = encodeWelcome(1, ['a', 'b'])
    const unordered = welcome.slice()
    // Swap the two one-letter names: 'b' before 'a'.
    unordered[unordered.length - 4] = 'b'.charCodeAt(0)
    unordered[unordered.length - 1] = 'a'.charCodeAt(0)
    expect(decodes(() => decodeLobby(unordered))).toBe(false)
    const repeated = welcome.slice()
    repeated[repeated.length - 1] = 'a'.charCodeAt(0)
    expect(decodes(() => decodeLobby(repeated))).toBe(false)
    expect(decodes(() => decodeLobby(Uint8Array.of(0x4a, 9)))).toBe(false)
  })

  it('every flipped byte and random bytes give a DecodeError or a frame, never another error', () => {
    const frames = [
      encodeJoin(5),
      encodeWelcome(4, ['alpha', 'beta', 'gamma']),
      encodeRefused('because'),
      encodeRequest({ joiner: 'n9', members: ['n1', 'n2', 'n9'] }),
    ]
    for (const f of frames)
      for (let i = 0; i < f.length; i++)
        for (const mask of [0x01, 0x80, 0xff]) {
          const g = f.slice()
          g[i] = g[i]! ^ mask
          decodes(() => decodeLobby(g))
          decodes(() => decodeRequest(g))
        }
    let x = 12345
    const next = () => {
      x = (x * 1103515245 + 12345) >>> 0
      return x >>> 24
    }
    for (let k = 0; k < 2_000; k++) {
      const g = Uint8Array.from({ length: 1 + (next() % 40) }, next)
      if (k % 2 === 0) g[0] = 0x4a
      else {
        g[0] = RECOVERY_CHANNEL.id
        if (g.length > 1) g[1] = 0x4a
      }
      decodes(() => decodeLobby(g))
      decodes(() => decodeRequest(g))
    }
  })
})
