import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  ErrorReply,
  encodeReply,
  MapReply,
  NULL_ARRAY,
  OK,
  ProtocolError,
  type Reply,
  RequestParser,
  SetReply,
  splitInline,
  Verbatim,
} from '../src/index.js'

const request = (args: Buffer[]) =>
  Buffer.concat([
    Buffer.from(`*${args.length}\r\n`),
    ...args.flatMap((a) => [Buffer.from(`$${a.length}\r\n`), a, Buffer.from('\r\n')]),
  ])
const text = (argv: Buffer[][]) => argv.map((a) => a.map((b) => b.toString('latin1')))
const encoded = (reply: Reply, protocol: 2 | 3) => {
  const out: Buffer[] = []
  encodeReply(reply, protocol, out)
  return Buffer.concat(out).toString('latin1')
}

describe('RequestParser', () => {
  it('parses pipelined multibulk and inline commands', () => {
    const p = new RequestParser()
    const bytes = Buffer.concat([
      request([Buffer.from('SET'), Buffer.from('k'), Buffer.from('v\r\nwith crlf')]),
      Buffer.from('PING\r\n\r\nECHO "a b" \'c\'\n'),
      request([Buffer.from('GET'), Buffer.from('k')]),
    ])
    expect(text(p.push(bytes))).toEqual([
      ['SET', 'k', 'v\r\nwith crlf'],
      ['PING'],
      ['ECHO', 'a b', 'c'],
      ['GET', 'k'],
    ])
  })

  it('gives the same commands whatever the chunking (property)', () => {
    const arg = fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a))
    fc.assert(
      fc.property(
        fc.array(fc.array(arg, { minLength: 1, maxLength: 5 }), { minLength: 1, maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        (commands, cuts) => {
          const bytes = Buffer.concat(commands.map(request))
          const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b)
          const p = new RequestParser()
          const got: Buffer[][] = []
          let from = 0
          for (const at of [...points, bytes.length]) {
            got.push(...p.push(bytes.subarray(from, at)))
            from = at
          }
          expect(text(got)).toEqual(text(commands))
        },
      ),
    )
  })

  it('refuses broken framing with a ProtocolError', () => {
    expect(() => new RequestParser().push(Buffer.from('*1\r\n+GET\r\n'))).toThrow(ProtocolError)
    expect(() => new RequestParser().push(Buffer.from('*x\r\n'))).toThrow(/multibulk length/)
    expect(() => new RequestParser().push(Buffer.from('*1\r\n$-3\r\n'))).toThrow(/bulk length/)
    expect(() => new RequestParser().push(Buffer.from('*1\r\n$1\r\nabc\r\n'))).toThrow(/CRLF/)
    expect(() => new RequestParser().push(Buffer.from('ECHO "open\r\n'))).toThrow(/quotes/)
    const small = new RequestParser({ maxBulkBytes: 4, maxArgs: 2 })
    expect(() => small.push(Buffer.from('*1\r\n$5\r\n'))).toThrow(/bulk length/)
    expect(() => new RequestParser({ maxArgs: 2 }).push(Buffer.from('*3\r\n'))).toThrow(/multibulk/)
    expect(() =>
      new RequestParser({ maxInlineBytes: 8 }).push(Buffer.from('PING PING PING')),
    ).toThrow(/inline/)
  })

  it('waits for the rest of a command', () => {
    const p = new RequestParser()
    expect(p.push(Buffer.from('*2\r\n$3\r\nGET\r\n$1'))).toEqual([])
    expect(text(p.push(Buffer.from('\r\nk\r\n')))).toEqual([['GET', 'k']])
  })

  it('splits inline arguments as redis does', () => {
    expect(splitInline("set  \"a\\x41\\n\" 'it\\'s'")).toEqual(['set', 'aA\n', "it's"])
    expect(() => splitInline('"a"b')).toThrow(ProtocolError)
  })
})

describe('encodeReply', () => {
  it('encodes every reply type in RESP2 and RESP3', () => {
    expect(encoded(OK, 2)).toBe('+OK\r\n')
    expect(encoded(new ErrorReply('ERR bad\r\nline'), 2)).toBe('-ERR bad line\r\n')
    expect(encoded(42, 2)).toBe(':42\r\n')
    expect(encoded(9007199254740993n, 2)).toBe(':9007199254740993\r\n')
    expect(encoded(Buffer.from('hé', 'latin1'), 2)).toBe('$2\r\nh\xe9\r\n')
    expect(encoded('hé', 2)).toBe('$3\r\nh\xc3\xa9\r\n')
    expect(encoded(null, 2)).toBe('$-1\r\n')
    expect(encoded(null, 3)).toBe('_\r\n')
    expect(encoded(NULL_ARRAY, 2)).toBe('*-1\r\n')
    expect(encoded(true, 2)).toBe(':1\r\n')
    expect(encoded(false, 3)).toBe('#f\r\n')
    expect(encoded(['a', 1, null], 2)).toBe('*3\r\n$1\r\na\r\n:1\r\n$-1\r\n')
    expect(encoded(new MapReply([['k', 1]]), 2)).toBe('*2\r\n$1\r\nk\r\n:1\r\n')
    expect(encoded(new MapReply([['k', 1]]), 3)).toBe('%1\r\n$1\r\nk\r\n:1\r\n')
    expect(encoded(new SetReply(['x']), 3)).toBe('~1\r\n$1\r\nx\r\n')
    expect(encoded(new Verbatim('a:1'), 3)).toBe('=7\r\ntxt:a:1\r\n')
    expect(encoded(new Verbatim('a:1'), 2)).toBe('$3\r\na:1\r\n')
  })
})
