import { describe, expect, it } from 'vitest'
import {
  errorReply,
  LineSplitter,
  okReply,
  parseRequest,
  templateFromJson,
  templateToJson,
  tupleFromJson,
  tupleToJson,
} from '../src/protocol.js'
import { formal, validateTuple } from '../src/tuple.js'
import { randomTuple, rng } from './fixtures/random.js'

const errorCode = (line: string) => {
  const r = parseRequest(line)
  return 'error' in r ? [r.id, r.error.code] : ['ok']
}

describe('requests', () => {
  it('parses every op; bytes as { $bytes }, formals as { formal }', () => {
    expect(parseRequest('{"id":1,"op":"out","tuple":["a",{"$bytes":"AQI="},null]}')).toEqual({
      id: 1,
      op: 'out',
      tuple: ['a', new Uint8Array([1, 2]), null],
    })
    expect(parseRequest('{"id":"x","op":"in","template":["a",{"formal":"int"}]}')).toEqual({
      id: 'x',
      op: 'in',
      template: ['a', formal.int],
    })
    for (const op of ['rd', 'inp', 'rdp'])
      expect(parseRequest(`{"id":2,"op":"${op}","template":[1]}`)).toMatchObject({ op })
    expect(parseRequest('{"id":3,"op":"cancel","target":"x"}')).toEqual({
      id: 3,
      op: 'cancel',
      target: 'x',
    })
    expect(parseRequest('{"id":4,"op":"info"}')).toEqual({ id: 4, op: 'info' })
  })

  it('answers what is no request with the error and, when it had one, its id', () => {
    expect(errorCode('not json')).toEqual([null, 'BAD_FRAME'])
    expect(errorCode('[1,2]')).toEqual([null, 'BAD_FRAME'])
    expect(errorCode('"str"')).toEqual([null, 'BAD_FRAME'])
    expect(errorCode('{"op":"out","tuple":[1]}')).toEqual([null, 'BAD_REQUEST'])
    expect(errorCode('{"id":{"a":1},"op":"info"}')).toEqual([null, 'BAD_REQUEST'])
    expect(errorCode('{"id":1.5,"op":"info"}')).toEqual([null, 'BAD_REQUEST'])
    expect(errorCode(`{"id":"${'x'.repeat(300)}","op":"info"}`)).toEqual([null, 'BAD_REQUEST'])
    expect(errorCode('{"id":7,"op":"eval"}')).toEqual([7, 'UNKNOWN_OP'])
    expect(errorCode('{"id":7}')).toEqual([7, 'UNKNOWN_OP'])
    expect(errorCode('{"id":7,"op":"out"}')).toEqual([7, 'BAD_REQUEST'])
    expect(errorCode('{"id":7,"op":"in"}')).toEqual([7, 'BAD_REQUEST'])
    expect(errorCode('{"id":7,"op":"out","tuple":[]}')).toEqual([7, 'BAD_TUPLE'])
    expect(errorCode('{"id":7,"op":"out","tuple":[{"formal":"int"}]}')).toEqual([7, 'BAD_TUPLE'])
    expect(errorCode('{"id":7,"op":"out","tuple":[{"$bytes":"!!"}]}')).toEqual([7, 'BAD_TUPLE'])
    expect(errorCode('{"id":7,"op":"out","tuple":[{"$bytes":"AQI=","x":1}]}')).toEqual([
      7,
      'BAD_TUPLE',
    ])
    expect(errorCode('{"id":7,"op":"in","template":[{"formal":"float"}]}')).toEqual([
      7,
      'BAD_TEMPLATE',
    ])
    expect(errorCode('{"id":7,"op":"in","template":"a"}')).toEqual([7, 'BAD_TEMPLATE'])
    expect(errorCode('{"id":7,"op":"cancel"}')).toEqual([7, 'BAD_REQUEST'])
    expect(errorCode(`{"id":7,"op":"out","tuple":["${'x'.repeat(40_000)}"]}`)).toEqual([
      7,
      'TOO_LARGE',
    ])
  })

  it('random lines never throw: each is a request or an error', () => {
    const random = rng(11)
    const alphabet = '{}[]":,0123456789abcdefinoutrdpc$ytes ormal\\'
    for (let i = 0; i < 3_000; i++) {
      const line = Array.from(
        { length: Math.floor(random() * 60) },
        () => alphabet[Math.floor(random() * alphabet.length)],
      ).join('')
      expect(() => parseRequest(line)).not.toThrow()
    }
  })

  it('tuples and templates round-trip through their JSON', () => {
    const random = rng(5)
    for (let i = 0; i < 300; i++) {
      const tuple = validateTuple(randomTuple(random))
      expect(tupleFromJson(JSON.parse(JSON.stringify(tupleToJson(tuple))))).toEqual(tuple)
      const template = tuple.map((v, j) => (j % 2 === 0 ? formal.any : v))
      expect(templateFromJson(JSON.parse(JSON.stringify(templateToJson(template))))).toEqual(
        template,
      )
    }
  })

  it('replies are one JSON line each', () => {
    expect(okReply(1, { tuple: null })).toBe('{"id":1,"ok":true,"tuple":null}\n')
    expect(
      JSON.parse(errorReply(null, Object.assign(new Error('m'), { code: 'BAD_FRAME' }) as never)),
    ).toEqual({
      id: null,
      ok: false,
      error: { code: 'BAD_FRAME', message: 'm' },
    })
  })
})

describe('LineSplitter', () => {
  it('splits at LF across any chunking, drops CR and blank lines, skips an over-long line once', () => {
    const text = 'one\r\ntwo\n\n   \nthree\nxxxxxxxxxxxxxxxxxxxxxxxxx\nfour\n'
    for (let size = 1; size <= text.length; size++) {
      const lines: string[] = []
      let tooLong = 0
      const s = new LineSplitter(
        20,
        (l) => lines.push(l),
        () => tooLong++,
      )
      const bytes = Buffer.from(text)
      for (let i = 0; i < bytes.length; i += size) s.push(bytes.subarray(i, i + size))
      expect(lines, `chunks of ${size}`).toEqual(['one', 'two', 'three', 'four'])
      expect(tooLong).toBe(1)
    }
  })

  it('keeps a multi-byte character split between chunks whole', () => {
    const lines: string[] = []
    const s = new LineSplitter(
      100,
      (l) => lines.push(l),
      () => {},
    )
    const bytes = Buffer.from('["é€😀"]\n')
    for (const b of bytes) s.push(Buffer.from([b]))
    expect(lines).toEqual(['["é€😀"]'])
  })
})
