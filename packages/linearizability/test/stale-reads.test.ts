import { describe, expect, it } from 'vitest'
import { check, checkStaleReads, kvModel } from '../src/index.js'
import { del, done, get, incr, lost, mget, mset, multi, set } from './support/ops.js'

describe('checkStaleReads', () => {
  it('accepts a stale read that linearizability rejects', () => {
    const history = [
      done(1, set('x', 'a'), 0, 1, 'OK'),
      done(1, set('x', 'b'), 2, 3, 'OK'),
      done(2, get('x'), 4, 5, 'a'), // a replica that has not applied the second SET yet
      done(3, get('x'), 4, 5, null), // one that has applied neither
    ]
    expect(check(kvModel(), history).result).toBe('illegal')
    const result = checkStaleReads(history)
    expect(result.result).toBe('ok')
    expect(result.partitions[0]!.linearization).toEqual([
      history[3],
      history[0],
      history[2],
      history[1],
    ])
  })

  it('lets two clients disagree, each moving forward', () => {
    const history = [
      done(1, set('x', 'a'), 0, 1, 'OK'),
      done(1, set('x', 'b'), 2, 3, 'OK'),
      done(2, get('x'), 4, 5, 'b'),
      done(3, get('x'), 6, 7, 'a'), // another client, behind
      done(3, get('x'), 8, 9, 'b'),
      done(2, get('x'), 10, 11, 'b'),
    ]
    expect(checkStaleReads(history).result).toBe('ok')
  })

  it('rejects a read going backwards for one client', () => {
    const history = [
      done(1, set('x', 'a'), 0, 1, 'OK'),
      done(1, set('x', 'b'), 2, 3, 'OK'),
      done(2, get('x'), 4, 5, 'b'),
      done(2, get('x'), 6, 7, 'a'),
    ]
    const result = checkStaleReads(history)
    expect(result.result).toBe('illegal')
    expect(result.counterexample!.blocked).toBe(history[3])
    expect(result.counterexample!.reason).toContain(
      'not older than what its client wrote or read before',
    )
    // Overlapping reads by one client may see the values in either order.
    const overlapping = [...history.slice(0, 3), done(2, get('x'), 4, 7, 'a')]
    expect(checkStaleReads(overlapping).result).toBe('ok')
  })

  it('rejects a value never written, and a value from a write called after the read returned', () => {
    expect(
      checkStaleReads([done(1, set('x', 'a'), 0, 1, 'OK'), done(2, get('x'), 2, 3, 'z')]).result,
    ).toBe('illegal')
    expect(
      checkStaleReads([done(2, get('x'), 0, 1, 'a'), done(1, set('x', 'a'), 2, 3, 'OK')]).result,
    ).toBe('illegal')
    // Called before the read returned: it may have been seen.
    expect(
      checkStaleReads([done(2, get('x'), 0, 2, 'a'), done(1, set('x', 'a'), 1, 3, 'OK')]).result,
    ).toBe('ok')
  })

  it('still requires the writes to be linearizable among themselves', () => {
    const twoIncrs = [done(1, incr('n'), 0, 10, 1), done(2, incr('n'), 0, 10, 1)]
    expect(checkStaleReads(twoIncrs).result).toBe('illegal')
    const badDel = [done(1, set('x', 'a'), 0, 1, 'OK'), done(2, del('x'), 2, 3, 0)]
    expect(checkStaleReads(badDel).result).toBe('illegal')
  })

  it('reads see a write order the writes allow: no value between two it cannot come between', () => {
    // INCRs give 1 then 2; a read of "2" before a read of "1" by one client goes backwards.
    const history = [
      done(1, incr('n'), 0, 1, 1),
      done(1, incr('n'), 2, 3, 2),
      done(2, get('n'), 4, 5, '2'),
      done(2, get('n'), 6, 7, '1'),
    ]
    expect(checkStaleReads(history).result).toBe('illegal')
  })

  it('requires a client to see its own completed writes, unless readYourWrites is false', () => {
    const history = [
      done(1, set('x', 'a'), 0, 1, 'OK'),
      done(2, set('x', 'b'), 2, 3, 'OK'),
      done(2, get('x'), 4, 5, 'a'), // client 2 does not see its own write
    ]
    expect(checkStaleReads(history).result).toBe('illegal')
    expect(checkStaleReads(history, { readYourWrites: true }).result).toBe('illegal')
    expect(checkStaleReads(history, { readYourWrites: false }).result).toBe('ok')
    const sees = [
      ...history.slice(0, 2),
      done(2, get('x'), 4, 5, 'b'),
      done(1, get('x'), 4, 5, 'a'),
    ]
    expect(checkStaleReads(sees).result).toBe('ok')
  })

  it('handles unknown outcomes: writes may have taken effect, reads say nothing', () => {
    const history = [
      done(1, set('x', 'a'), 0, 1, 'OK'),
      lost(2, set('x', 'b'), 2),
      lost(3, get('x'), 3),
      done(3, get('x'), 10, 11, 'b'),
      done(4, get('x'), 12, 13, 'a'),
    ]
    const result = checkStaleReads(history)
    expect(result.result).toBe('ok')
    expect(result.operations).toBe(5)
    expect(result.partitions[0]!.operations).toHaveLength(4) // the unknown read is left out
    // An unknown write of the client itself need not be seen: it may never have happened.
    expect(checkStaleReads([lost(1, set('x', 'a'), 0), done(1, get('x'), 5, 6, null)]).result).toBe(
      'ok',
    )
  })

  it('checks each key on its own by default, and across keys with acrossKeys', () => {
    const history = [
      done(1, set('x', 'a'), 0, 1, 'OK'),
      done(1, set('y', 'b'), 2, 3, 'OK'),
      done(2, get('y'), 4, 5, 'b'), // client 2 has seen y's write, which came after x's
      done(2, get('x'), 6, 7, null), // then reads x from before x's write
    ]
    expect(checkStaleReads(history).result).toBe('ok')
    expect(checkStaleReads(history, { acrossKeys: true }).result).toBe('illegal')
    const backwards = [...history.slice(0, 3), done(2, get('y'), 6, 7, null)]
    const result = checkStaleReads(backwards)
    expect(result.partitions.map((part) => part.result)).toEqual(['ok', 'illegal'])
  })

  it('reads several keys at one point: a stale MGET passes, a torn one does not', () => {
    const writes = [
      done(1, mset({ a: '1', b: '1' }), 0, 1, 'OK'),
      done(1, mset({ a: '2', b: '2' }), 2, 3, 'OK'),
    ]
    expect(checkStaleReads([...writes, done(2, mget('a', 'b'), 4, 5, ['1', '1'])]).result).toBe(
      'ok',
    )
    expect(checkStaleReads([...writes, done(2, mget('a', 'b'), 4, 5, ['2', '1'])]).result).toBe(
      'illegal',
    )
    const readOnlyTransaction = done(2, multi(get('a'), get('b')), 4, 5, ['1', '2'])
    expect(checkStaleReads([...writes, readOnlyTransaction]).result).toBe('illegal')
    // GETs of the two keys apart may be served at different points.
    expect(
      checkStaleReads([...writes, done(2, get('a'), 4, 5, '2'), done(3, get('b'), 4, 5, '1')])
        .result,
    ).toBe('ok')
  })
})
