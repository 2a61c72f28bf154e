import type { PsyncMessage } from '@consul/xkernel'
import { commandId } from '@consul/xkernel/order'
import { describe, expect, it } from 'vitest'
import { compareKey, type WaveCommand, WaveQueue } from '../src/wave-queue.js'

/** A fake Psync message of `sender` at `depth`, carrying commands of these ranks. */
function message(sender: string, seq: number, depth: number, ranks: readonly number[]) {
  const m: PsyncMessage = {
    id: `${sender}:${seq}`,
    sender,
    seq,
    depth,
    deps: [],
    payload: new Uint8Array(),
    restored: false,
  }
  const commands: WaveCommand[] = ranks.map((rank, index) => ({
    id: commandId(m.id, index),
    message: m,
    index,
    command: Uint8Array.of(rank),
    rank,
    delivered: false,
  }))
  return { m, commands }
}

function add(
  q: WaveQueue,
  sender: string,
  seq: number,
  depth: number,
  ranks: readonly number[],
  confirmed = true,
) {
  const { m, commands } = message(sender, seq, depth, ranks)
  q.add(m, commands, confirmed)
  return m.id
}

/** Everything the queue lets out now, as `id` (early ones marked with `!`). */
function drain(q: WaveQueue): string[] {
  const out: string[] = []
  for (let n = q.next(); n !== undefined; n = q.next())
    out.push(`${n.command.id}${n.early ? '!' : ''}`)
  return out
}

describe('WaveQueue: the delivery rule', () => {
  it('lets rank-0 commands of the current wave go at once, the others at completion in key order', () => {
    const q = new WaveQueue()
    add(q, 'b', 1, 0, [2, 0])
    expect(drain(q)).toEqual(['b:1/1!'])
    expect(q.ahead).toBe(1)
    expect(q.wave).toBe(0)
    add(q, 'c', 1, 0, [0, 1])
    add(q, 'a', 1, 0, [2, 1, 0])
    expect(drain(q)).toEqual(['c:1/0!', 'a:1/2!'])
    q.complete(0, ['a:1', 'b:1', 'c:1'])
    // rank 1 (a before c), then rank 2 (a before b); rank 0 already out.
    expect(drain(q)).toEqual(['a:1/1', 'c:1/1', 'a:1/0', 'b:1/0'])
    expect(q.wave).toBe(1)
    expect(q.ahead).toBe(0)
  })

  it('holds every command of a later wave, rank 0 included, until the earlier waves are done', () => {
    const q = new WaveQueue()
    add(q, 'a', 1, 0, [1])
    add(q, 'b', 1, 1, [0])
    add(q, 'c', 1, 2, [0])
    expect(drain(q)).toEqual([])
    q.complete(0, ['a:1'])
    // Wave 0 done: wave 1 is current, its rank-0 command goes early; wave 2 still waits.
    expect(drain(q)).toEqual(['a:1/0', 'b:1/0!'])
    expect(q.wave).toBe(1)
    q.complete(1, ['b:1'])
    expect(drain(q)).toEqual(['c:1/0!'])
    expect(q.wave).toBe(2)
  })

  it('moves through complete waves without commands', () => {
    const q = new WaveQueue()
    q.complete(0, ['a:1', 'b:1'])
    q.complete(1, ['a:2'])
    add(q, 'c', 1, 2, [1])
    expect(drain(q)).toEqual([])
    expect(q.wave).toBe(2)
    q.complete(2, ['c:1'])
    expect(drain(q)).toEqual(['c:1/0'])
    expect(q.wave).toBe(3)
  })

  it('keeps an own message back until it is confirmed durable, but not past its wave', () => {
    const q = new WaveQueue()
    const own = add(q, 'a', 1, 0, [0, 0], false)
    expect([...q.unconfirmed()]).toEqual([own])
    expect(drain(q)).toEqual([])
    q.confirm(own)
    expect(q.unconfirmed().size).toBe(0)
    expect(drain(q)).toEqual(['a:1/0!', 'a:1/1!'])
    const later = add(q, 'a', 2, 1, [0], false)
    q.complete(0, ['a:1'])
    expect(drain(q)).toEqual([])
    q.complete(1, [later])
    expect(drain(q)).toEqual(['a:2/0'])
  })

  it('reports an early delivery whose message is not in the complete wave', () => {
    const q = new WaveQueue()
    add(q, 'a', 1, 0, [0])
    add(q, 'x', 7, 0, [0])
    expect(drain(q)).toEqual(['a:1/0!', 'x:7/0!'])
    q.complete(0, ['a:1'])
    expect(drain(q)).toEqual([])
    expect(q.lost.map((c) => c.id)).toEqual(['x:7/0'])
  })

  it('skipTo (a restored checkpoint) drops what lies below it; messages below are ignored', () => {
    const q = new WaveQueue()
    add(q, 'a', 1, 0, [1])
    add(q, 'a', 2, 3, [0])
    q.skipTo(3)
    expect(q.wave).toBe(3)
    add(q, 'b', 1, 1, [0])
    expect(q.has('b:1')).toBe(false)
    q.complete(2, ['b:1'])
    expect(drain(q)).toEqual(['a:2/0!'])
  })

  it('never skips a gap Psync will never report: it stops there, and says so', () => {
    const q = new WaveQueue()
    add(q, 'a', 1, 0, [1])
    q.complete(4, ['b:9'])
    add(q, 'b', 9, 4, [0])
    expect(drain(q)).toEqual([])
    expect(q.gap).toEqual({ expected: 0, reported: 4 })
    expect(q.wave).toBe(0)
    // Nothing is delivered after the gap, ever, even once wave 0 would complete.
    q.complete(0, ['a:1'])
    expect(drain(q)).toEqual([])
  })

  it('compares keys by rank, sender, seq, then index', () => {
    const c = (sender: string, seq: number, rank: number, index: number) =>
      message(sender, seq, 0, [...Array<number>(index).fill(0), rank]).commands[index]!
    const sorted = [c('b', 1, 0, 0), c('a', 1, 1, 0), c('a', 1, 0, 1), c('a', 1, 0, 0)]
      .sort(compareKey)
      .map((x) => `${x.id}@${x.rank}`)
    expect(sorted).toEqual(['a:1/0@0', 'a:1/1@0', 'b:1/0@0', 'a:1/0@1'])
  })
})
