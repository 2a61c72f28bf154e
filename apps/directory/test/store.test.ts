import { describe, expect, it } from 'vitest'
import {
  Directory,
  ErrorReply,
  execute,
  glob,
  type MapReply,
  OK,
  parseInteger,
  Simple,
} from '../src/index.js'

const run = (d: Directory, now: number, ...words: string[]) =>
  execute(
    d,
    words.map((w) => Buffer.from(w)),
    now,
  )
const str = (r: unknown) => (r instanceof Buffer ? r.toString() : r)
const err = (r: unknown) => (r instanceof ErrorReply ? r.message : `not an error: ${String(r)}`)

describe('the directory commands', () => {
  it('strings: SET options, GET, INCR family, APPEND, GETSET, GETDEL, MSET/MGET, SETNX', () => {
    const d = new Directory()
    expect(run(d, 1, 'SET', 'k', 'v')).toBe(OK)
    expect(str(run(d, 1, 'get', 'k'))).toBe('v')
    expect(run(d, 1, 'SET', 'k', 'w', 'NX')).toBeNull()
    expect(run(d, 1, 'SET', 'n', 'w', 'XX')).toBeNull()
    expect(str(run(d, 1, 'SET', 'k', 'w', 'XX', 'GET'))).toBe('v')
    expect(err(run(d, 1, 'SET', 'k', 'w', 'NX', 'XX'))).toBe('ERR syntax error')
    expect(err(run(d, 1, 'SET', 'k', 'w', 'EX', '0'))).toMatch(/invalid expire time/)
    expect(run(d, 1, 'INCR', 'c')).toBe(1)
    expect(run(d, 1, 'INCRBY', 'c', '41')).toBe(42)
    expect(run(d, 1, 'DECRBY', 'c', '2')).toBe(40)
    expect(run(d, 1, 'DECR', 'c')).toBe(39)
    expect(err(run(d, 1, 'INCR', 'k'))).toBe('ERR value is not an integer or out of range')
    expect(run(d, 1, 'SET', 'big', '9223372036854775807')).toBe(OK)
    expect(err(run(d, 1, 'INCR', 'big'))).toMatch(/overflow/)
    expect(run(d, 1, 'APPEND', 'k', 'x')).toBe(2)
    expect(run(d, 1, 'STRLEN', 'k')).toBe(2)
    expect(str(run(d, 1, 'GETSET', 'k', 'z'))).toBe('wx')
    expect(str(run(d, 1, 'GETDEL', 'k'))).toBe('z')
    expect(run(d, 1, 'GET', 'k')).toBeNull()
    expect(run(d, 1, 'MSET', 'a', '1', 'b', '2')).toBe(OK)
    expect((run(d, 1, 'MGET', 'a', 'x', 'b') as unknown[]).map(str)).toEqual(['1', null, '2'])
    expect(run(d, 1, 'SETNX', 'a', '9')).toBe(0)
    expect(run(d, 1, 'SETNX', 'q', '9')).toBe(1)
    expect(run(d, 1, 'DEL', 'a', 'b', 'nope')).toBe(2)
    expect(run(d, 1, 'EXISTS', 'a', 'q', 'q')).toBe(2)
  })

  it('expiry is decided from the ordered clock, not the replica clock', () => {
    const d = new Directory()
    run(d, 1000, 'SET', 'k', 'v', 'PX', '100')
    expect(str(run(d, 1099, 'GET', 'k'))).toBe('v')
    // A read is judged at max(its clock, the state's); it never moves the state's clock.
    expect(run(d, 1100, 'GET', 'k')).toBeNull()
    expect(d.clock).toBe(1000)
    expect(run(d, 1050, 'PTTL', 'k')).toBe(50)
    // A write from a replica whose clock lags changes nothing about the expiry.
    run(d, 2000, 'SET', 'other', 'x')
    expect(run(d, 10, 'EXISTS', 'k')).toBe(0)
    expect(run(d, 10, 'DBSIZE')).toBe(1)
    run(d, 2000, 'SET', 'e', 'x', 'EX', '10')
    expect(run(d, 2000, 'TTL', 'e')).toBe(10)
    expect(run(d, 2000, 'PERSIST', 'e')).toBe(1)
    expect(run(d, 2000, 'TTL', 'e')).toBe(-1)
    expect(run(d, 2000, 'TTL', 'none')).toBe(-2)
  })

  it('two replicas applying the same commands reach the same state whatever their clocks', () => {
    const commands: [number, string[]][] = [
      [500, ['SET', 'a', '1', 'PX', '300']],
      [400, ['INCR', 'a']],
      [900, ['SET', 'b', '2']],
      [100, ['INCR', 'a']],
    ]
    const one = new Directory()
    const two = new Directory()
    const r1 = commands.map(([t, c]) => run(one, t, ...c))
    const r2 = commands.map(([t, c]) => run(two, t, ...c))
    expect(r2).toEqual(r1)
    expect([...two.keys]).toEqual([...one.keys])
    // At 900 'a' (expiring at 800) is gone: the last INCR starts from 0 everywhere.
    expect(r1[3]).toBe(1)
  })

  it('keys: KEYS with globs, SCAN pages, TYPE, RENAME, FLUSHDB', () => {
    const d = new Directory()
    for (const k of ['user:1', 'user:2', 'job:1']) run(d, 1, 'SET', k, 'x')
    run(d, 1, 'HSET', 'h', 'f', 'v')
    expect((run(d, 1, 'KEYS', 'user:*') as Buffer[]).map(String).sort()).toEqual([
      'user:1',
      'user:2',
    ])
    const seen: string[] = []
    let cursor = '0'
    do {
      const [next, page] = run(d, 1, 'SCAN', cursor, 'COUNT', '2') as [string, Buffer[]]
      seen.push(...page.map(String))
      cursor = next
    } while (cursor !== '0')
    expect(seen.sort()).toEqual(['h', 'job:1', 'user:1', 'user:2'])
    expect(run(d, 1, 'TYPE', 'h')).toEqual(new Simple('hash'))
    expect(run(d, 1, 'TYPE', 'zz')).toEqual(new Simple('none'))
    expect(run(d, 1, 'RENAME', 'job:1', 'job:2')).toBe(OK)
    expect(err(run(d, 1, 'RENAME', 'job:1', 'x'))).toBe('ERR no such key')
    expect(run(d, 1, 'FLUSHDB')).toBe(OK)
    expect(run(d, 1, 'DBSIZE')).toBe(0)
  })

  it('hashes, and WRONGTYPE across types', () => {
    const d = new Directory()
    expect(run(d, 1, 'HSET', 'h', 'a', '1', 'b', '2')).toBe(2)
    expect(run(d, 1, 'HSET', 'h', 'a', '3')).toBe(0)
    expect(str(run(d, 1, 'HGET', 'h', 'a'))).toBe('3')
    expect(run(d, 1, 'HINCRBY', 'h', 'a', '4')).toBe(7)
    expect(run(d, 1, 'HLEN', 'h')).toBe(2)
    expect(run(d, 1, 'HEXISTS', 'h', 'b')).toBe(1)
    expect((run(d, 1, 'HKEYS', 'h') as Buffer[]).map(String)).toEqual(['a', 'b'])
    expect((run(d, 1, 'HVALS', 'h') as Buffer[]).map(String)).toEqual(['7', '2'])
    expect(
      (run(d, 1, 'HGETALL', 'h') as MapReply).entries.map(([k, v]) => [str(k), str(v)]),
    ).toEqual([
      ['a', '7'],
      ['b', '2'],
    ])
    expect(run(d, 1, 'HDEL', 'h', 'a', 'b', 'c')).toBe(2)
    expect(run(d, 1, 'EXISTS', 'h')).toBe(0)
    run(d, 1, 'SET', 's', 'x')
    expect(err(run(d, 1, 'HGET', 's', 'a'))).toMatch(/^WRONGTYPE/)
    run(d, 1, 'HSET', 'h', 'a', 'x')
    expect(err(run(d, 1, 'GET', 'h'))).toMatch(/^WRONGTYPE/)
    expect(err(run(d, 1, 'HINCRBY', 'h', 'a', '1'))).toBe('ERR hash value is not an integer')
  })

  it('wrong arity in Redis words', () => {
    const d = new Directory()
    expect(err(run(d, 1, 'GET'))).toBe("ERR wrong number of arguments for 'get' command")
    expect(err(run(d, 1, 'MSET', 'a'))).toBe("ERR wrong number of arguments for 'mset' command")
    expect(err(run(d, 1, 'MSET', 'a', 'b', 'c'))).toBe(
      "ERR wrong number of arguments for 'mset' command",
    )
    expect(err(run(d, 1, 'HSET', 'h', 'a', 'b', 'c'))).toMatch(/'hset'/)
  })

  it('parses integers as strictly as Redis', () => {
    expect(parseInteger(Buffer.from('-12'))).toBe(-12n)
    for (const bad of ['', '+1', '01', '1.0', ' 1', '9223372036854775808', '-0']) {
      expect(parseInteger(Buffer.from(bad))).toBeUndefined()
    }
    expect(glob('h?llo*[ab]\\*')('hello world b*')).toBe(true)
    expect(glob('[^x]')('x')).toBe(false)
  })
})
