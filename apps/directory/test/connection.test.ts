import { describe, expect, it } from 'vitest'
import { Connection, type ServerContext } from '../src/connection.js'
import { codedError, type FakeGroup, fakeContext, fakeGroup } from './support/fake-group.js'
import { command, decodeReplies, type Value } from './support/replies.js'

function open(g: FakeGroup, ctx: ServerContext = fakeContext(g)) {
  const written: Buffer[] = []
  const events: string[] = []
  const conn = new Connection(ctx, {
    address: '127.0.0.1:1',
    write: (chunks) => {
      written.push(...chunks)
      return true
    },
    end: () => events.push('end'),
    pause: () => events.push('pause'),
    resume: () => events.push('resume'),
  })
  let seen = 0
  /** The replies written since the last call. */
  const replies = (): Value[] => {
    const all = Buffer.concat(written)
    const fresh = all.subarray(seen)
    seen = all.length
    return decodeReplies(fresh)
  }
  const send = (...commands: string[][]) =>
    conn.push(Buffer.concat(commands.map((c) => command(...c))))
  return { conn, ctx, replies, send, events }
}

const settle = () => new Promise((r) => setTimeout(r, 0))

describe('the reply queue', () => {
  it('answers a pipeline in request order', async () => {
    const g = fakeGroup()
    const c = open(g)
    c.send(['SET', 'k', 'v'], ['GET', 'k'], ['INCR', 'n'], ['INCR', 'n'], ['PING'], ['GET', 'n'])
    await settle()
    expect(c.replies()).toEqual(['OK', 'v', 1, 2, 'PONG', '2'])
    expect(g.directory.applied).toBe(3)
  })

  it("runs a local read only after the connection's earlier writes are applied (read your writes)", async () => {
    const g = fakeGroup()
    g.hold = true
    const c = open(g)
    c.send(['SET', 'k', 'v'], ['GET', 'k'], ['PING'])
    await settle()
    expect(c.replies()).toEqual([]) // nothing may overtake the pending write
    g.release()
    await settle()
    expect(c.replies()).toEqual(['OK', 'v', 'PONG'])
  })

  it('answers a local read at once when nothing is pending, and never submits it', async () => {
    const g = fakeGroup()
    g.directory.keys.set('k', { type: 'string', value: Buffer.from('x'), expireAt: undefined })
    g.hold = true
    const c = open(g)
    c.send(['GET', 'k'], ['MGET', 'k', 'nope'], ['EXISTS', 'k'])
    expect(c.replies()).toEqual(['x', ['x', null], 1])
    expect(g.queued.length).toBe(0)
    expect(c.ctx.counters.localReads).toBe(3)
  })

  it('orders reads through the group with linearizable reads', async () => {
    const g = fakeGroup()
    g.hold = true
    const c = open(g, fakeContext(g, { linearizableReads: true }))
    c.send(['GET', 'k'])
    expect(g.queued.length).toBe(1)
    expect(c.replies()).toEqual([])
    g.release()
    await settle()
    expect(c.replies()).toEqual([null])
    expect(c.ctx.counters.orderedReads).toBe(1)
  })

  it('stops reading past maxPending unanswered requests and resumes once they drain', async () => {
    const g = fakeGroup()
    g.hold = true
    const c = open(g, fakeContext(g, { maxPending: 4 }))
    for (let i = 0; i < 4; i++) c.send(['SET', `k${i}`, 'v'])
    expect(c.events).toEqual(['pause'])
    g.release()
    await settle()
    expect(c.events).toEqual(['pause', 'resume'])
    expect(c.replies()).toEqual(['OK', 'OK', 'OK', 'OK'])
  })
})

describe('transactions', () => {
  it('applies MULTI … EXEC as one replicated command and answers each reply in an array', async () => {
    const g = fakeGroup()
    const c = open(g)
    c.send(['MULTI'], ['SET', 'a', '1'], ['INCR', 'a'], ['GET', 'a'], ['EXEC'])
    await settle()
    expect(c.replies()).toEqual(['OK', 'QUEUED', 'QUEUED', 'QUEUED', ['OK', 2, '2']])
    expect(g.directory.applied).toBe(1)
  })

  it('aborts EXEC after a queueing error and applies nothing', async () => {
    const g = fakeGroup()
    const c = open(g)
    c.send(['MULTI'], ['SET', 'a'], ['NOSUCH', 'x'], ['SET', 'b', '1'], ['EXEC'], ['EXISTS', 'b'])
    await settle()
    expect(c.replies()).toEqual([
      'OK',
      { error: "ERR wrong number of arguments for 'set' command" },
      { error: "ERR unknown command 'NOSUCH', with args beginning with: 'x' " },
      'QUEUED',
      { error: 'EXECABORT Transaction discarded because of previous errors.' },
      0,
    ])
    expect(g.directory.applied).toBe(0)
  })

  it('FLUSHALL is FLUSHDB, alone and inside MULTI', async () => {
    const g = fakeGroup()
    const c = open(g)
    c.send(['SET', 'a', '1'], ['FLUSHALL'], ['DBSIZE'], ['SET', 'b', '1'])
    c.send(['MULTI'], ['FLUSHALL', 'ASYNC'], ['DBSIZE'], ['EXEC'])
    await settle()
    expect(c.replies()).toEqual(['OK', 'OK', 0, 'OK', 'OK', 'QUEUED', 'QUEUED', ['OK', 0]])
  })

  it('DISCARD, EXEC without MULTI, nested MULTI, an empty transaction', async () => {
    const g = fakeGroup()
    const c = open(g)
    c.send(['MULTI'], ['SET', 'a', '1'], ['DISCARD'], ['EXEC'], ['DISCARD'])
    c.send(['MULTI'], ['MULTI'], ['EXEC'])
    await settle()
    expect(c.replies()).toEqual([
      'OK',
      'QUEUED',
      'OK',
      { error: 'ERR EXEC without MULTI' },
      { error: 'ERR DISCARD without MULTI' },
      'OK',
      { error: 'ERR MULTI calls can not be nested' },
      [],
    ])
    expect(g.directory.keys.size).toBe(0)
  })
})

describe('failures from the group', () => {
  it('says LOADING while the replica recovers — for writes and for local reads', async () => {
    const g = fakeGroup()
    const c = open(g)
    g.failWith = codedError('RECOVERING', 'a is recovering')
    g.recovery = 'recovering'
    c.send(['SET', 'k', 'v'], ['GET', 'k'])
    await settle()
    const [w, r] = c.replies() as { error: string }[]
    expect(w!.error).toMatch(/^LOADING a is recovering; nothing was done/)
    expect(r!.error).toMatch(/^LOADING a is recovering/)
    expect(c.ctx.counters.refused).toBe(1)
  })

  it('answers CLUSTERDOWN or TRYAGAIN when the command was not sent (notApplied), UNCERTAIN when the outcome is unknown', async () => {
    const g = fakeGroup()
    const c = open(g)
    g.failWith = codedError(
      'NO_PRIMARY',
      'group directory is in a minority partition (view 3): it cannot order until it reaches a majority again; the command was not sent',
      true,
    )
    c.send(['SET', 'k', 'v'])
    await settle()
    g.failWith = codedError(
      'NO_PRIMARY',
      'this replica was excluded from the primary partition (view 4) before the command was delivered here; its outcome is unknown here',
    )
    c.send(['SET', 'k', 'w'])
    await settle()
    g.failWith = codedError('CLOSED', 'group directory closed')
    c.send(['INCR', 'n'])
    await settle()
    // Still queued when the group moved on (a join): never sent.
    g.failWith = codedError('CLOSED', 'group directory closed before the command was sent', true)
    c.send(['INCR', 'n'])
    await settle()
    const [down, excluded, closed, unsent] = c.replies() as { error: string }[]
    expect(down!.error).toMatch(/^CLUSTERDOWN .*minority.*; the command was not applied$/)
    expect(excluded!.error).toMatch(/^UNCERTAIN a: NO_PRIMARY: .*may or may not have been applied$/)
    expect(closed!.error).toMatch(/^UNCERTAIN a: CLOSED: /)
    expect(unsent!.error).toBe(
      'TRYAGAIN group directory closed before the command was sent; the command was not applied',
    )
    expect(c.ctx.counters).toMatchObject({ refused: 2, uncertain: 2 })
  })
})

describe('connection commands', () => {
  it('requires AUTH when a password is set', async () => {
    const g = fakeGroup()
    const c = open(g, fakeContext(g, { password: 'sesame' }))
    c.send(
      ['GET', 'k'],
      ['AUTH', 'nope'],
      ['AUTH', 'other', 'sesame'],
      ['AUTH', 'sesame'],
      ['GET', 'k'],
    )
    await settle()
    expect(c.replies()).toEqual([
      { error: 'NOAUTH Authentication required.' },
      { error: 'WRONGPASS invalid username-password pair or user is disabled.' },
      { error: 'WRONGPASS invalid username-password pair or user is disabled.' },
      'OK',
      null,
    ])
    const d = open(g, fakeContext(g, { password: 'sesame' }))
    d.send(['HELLO', '3', 'AUTH', 'default', 'sesame', 'SETNAME', 'app'], ['CLIENT', 'GETNAME'])
    const [hello, name] = d.replies()
    expect(hello).toMatchObject({ map: expect.arrayContaining([['proto', 3]]) })
    expect(name).toBe('app')
    const e = open(g)
    e.send(['AUTH', 'x'])
    expect((e.replies()[0] as { error: string }).error).toMatch(/without any password configured/)
  })

  it('HELLO 3 switches the reply encoding for requests read after it, not before', async () => {
    const g = fakeGroup()
    g.hold = true
    const c = open(g)
    c.send(
      ['SET', 'k', 'v'],
      ['GET', 'missing'],
      ['HELLO', '3'],
      ['GET', 'missing'],
      ['HGETALL', 'k'],
    )
    g.release()
    await settle()
    // Raw bytes: the first null is RESP2's, the second RESP3's.
    const replies = c.replies()
    expect(replies[0]).toBe('OK')
    expect(replies[1]).toBeNull()
    expect(replies[2]).toMatchObject({
      map: expect.arrayContaining([
        ['server', 'redis'],
        ['proto', 3],
      ]),
    })
    expect(replies[4]).toEqual({
      error: 'WRONGTYPE Operation against a key holding the wrong kind of value',
    })
    c.send(['HELLO', '4'])
    expect(c.replies()).toEqual([{ error: 'NOPROTO unsupported protocol version' }])
  })

  it("answers Redis's own errors for unknown commands, arity and SELECT, and the usual introspection", () => {
    const g = fakeGroup()
    const c = open(g)
    c.send(
      ['FOO', 'a', 'b'],
      ['GET'],
      ['SELECT', '1'],
      ['SELECT', '0'],
      ['PING', 'hi'],
      ['ECHO', 'x'],
      ['CLIENT', 'SETNAME', 'bad name'],
      ['CLIENT', 'SETNAME', 'w1'],
      ['CLIENT', 'GETNAME'],
      ['CLIENT', 'ID'],
      ['CLIENT', 'SETINFO', 'LIB-NAME', 'ioredis'],
      ['CLIENT', 'NOPE'],
      ['COMMAND', 'COUNT'],
      ['CONFIG', 'GET', 'save'],
      ['WATCH', 'k'],
    )
    const r = c.replies()
    expect(r.slice(0, 6)).toEqual([
      { error: "ERR unknown command 'FOO', with args beginning with: 'a' 'b' " },
      { error: "ERR wrong number of arguments for 'get' command" },
      { error: 'ERR DB index is out of range' },
      'OK',
      'hi',
      'x',
    ])
    expect(r[6]).toEqual({
      error: 'ERR Client names cannot contain spaces, newlines or special characters.',
    })
    expect(r.slice(7, 11)).toEqual(['OK', 'w1', 1, 'OK'])
    expect(r[11]).toEqual({ error: "ERR unknown subcommand 'NOPE'. Try CLIENT HELP." })
    expect(typeof r[12]).toBe('number')
    expect(r[13]).toEqual(['save', ''])
    expect((r[14] as { error: string }).error).toMatch(/^ERR WATCH is not supported/)
  })

  it('INFO reports loading:1 while the replica is not active, and the consul section', () => {
    const g = fakeGroup()
    const c = open(g)
    c.send(['INFO'])
    const [active] = c.replies() as string[]
    expect(active).toMatch(/loading:0/)
    expect(active).toMatch(/# Consul\r\nreplica:a\r\nstack:strong\r\norder:total\r\nreads:local/)
    expect(active).toMatch(/view_members:a,b,c/)
    g.recovery = 'transferring'
    c.send(['INFO', 'persistence'])
    const [loading] = c.replies() as string[]
    expect(loading).toMatch(/^# Persistence\r\nloading:1\r\n/)
    expect(loading).not.toMatch(/# Server/)
  })

  it('closes after QUIT, once every earlier reply is written', async () => {
    const g = fakeGroup()
    g.hold = true
    const c = open(g)
    c.send(['SET', 'k', 'v'], ['QUIT'], ['SET', 'after', 'x'])
    expect(c.events).toEqual([])
    g.release()
    await settle()
    expect(c.replies()).toEqual(['OK', 'OK'])
    expect(c.events).toEqual(['end'])
    expect(g.directory.keys.has('after')).toBe(false)
  })

  it('answers broken framing with a protocol error after the replies owed, then closes', async () => {
    const g = fakeGroup()
    const c = open(g)
    c.conn.push(Buffer.concat([command('SET', 'k', 'v'), Buffer.from('*1\r\n$x\r\n')]))
    await settle()
    expect(c.replies()).toEqual(['OK', { error: 'ERR Protocol error: invalid bulk length' }])
    expect(c.events).toEqual(['end'])
    expect(c.ctx.counters.protocolErrors).toBe(1)
  })

  it('reads inline commands (redis-cli piped text, telnet)', () => {
    const g = fakeGroup()
    const c = open(g)
    c.conn.push(Buffer.from('PING\r\nECHO "a b"\r\n'))
    expect(c.replies()).toEqual(['PONG', 'a b'])
  })
})

describe('write timeout', () => {
  it('answers UNCERTAIN when the group does not answer in time, and drops the late result', async () => {
    const g = fakeGroup()
    g.hold = true
    const c = open(g, fakeContext(g, { writeTimeoutMs: 20 }))
    c.send(['SET', 'k', 'v'], ['GET', 'k'])
    await new Promise((r) => setTimeout(r, 40))
    const [w, r] = c.replies() as [{ error: string }, unknown]
    expect(w.error).toMatch(
      /^UNCERTAIN a: no answer from the group within 20 ms; the write may or may not be applied/,
    )
    expect(r).toBeNull() // the read ran after the write's slot completed: not applied here yet
    g.release()
    await settle()
    expect(c.replies()).toEqual([])
    expect(c.ctx.counters).toMatchObject({ uncertain: 1, timedOut: 1 })
  })
})
