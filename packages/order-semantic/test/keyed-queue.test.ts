/**
 * The keyed delivery rule (`WaveQueue` with `senders`): unit cases, then a property over
 * random schedules — every conflicting pair in key order at every replica, whatever the
 * arrival order, durability and completion timing — and the same property rejecting a
 * broken rule that delivers in arrival order.
 */
import type { NodeId, PsyncMessage } from '@consul/xkernel'
import { commandId } from '@consul/xkernel/order'
import { describe, expect, it } from 'vitest'
import { type Access, ALL, Blockers, conflict } from '../src/keys.js'
import { compareKey, type WaveCommand, WaveQueue } from '../src/wave-queue.js'
import { ArrivalOrderQueue } from './fixtures/broken-queue.js'

const read = (...keys: string[]): Access => ({ all: false, keys, write: false })
const write = (...keys: string[]): Access => ({ all: false, keys, write: true })

function message(sender: string, seq: number, depth: number, accesses: readonly Access[]) {
  const m: PsyncMessage = {
    id: `${sender}:${seq}`,
    sender,
    seq,
    depth,
    deps: [],
    payload: new Uint8Array(),
    restored: false,
  }
  const commands: WaveCommand[] = accesses.map((access, index) => ({
    id: commandId(m.id, index),
    message: m,
    index,
    command: new Uint8Array(),
    rank: 0,
    access,
    delivered: false,
  }))
  return { m, commands }
}

/** Delivers a message to the queue as the session does: its commands, and its sender's depth. */
function add(
  q: WaveQueue,
  sender: string,
  seq: number,
  depth: number,
  accesses: readonly Access[],
  confirmed = true,
) {
  const { m, commands } = message(sender, seq, depth, accesses)
  if (accesses.length > 0) q.add(m, commands, confirmed)
  if (confirmed) q.reached(sender, depth)
  return m.id
}

function drain(q: WaveQueue): string[] {
  const out: string[] = []
  for (let n = q.next(); n !== undefined; n = q.next())
    out.push(`${n.command.id}${n.early ? '!' : ''}`)
  return out
}

describe('conflict and Blockers', () => {
  it('conflict iff a shared key with a write, or either is all', () => {
    expect(conflict(read('x'), read('x'))).toBe(false)
    expect(conflict(read('x'), write('x'))).toBe(true)
    expect(conflict(write('x'), write('y'))).toBe(false)
    expect(conflict(write('x', 'y'), read('z', 'y'))).toBe(true)
    expect(conflict(write(), write())).toBe(false)
    expect(conflict(ALL, read())).toBe(true)
    expect(conflict(read('q'), ALL)).toBe(true)
  })

  it('Blockers answers as conflict against every access added', () => {
    const accesses = [read('x'), write('y'), read('y', 'z'), write(), ALL, read(), write('x')]
    for (let mask = 0; mask < 1 << accesses.length; mask++) {
      const added = accesses.filter((_, i) => mask & (1 << i))
      const b = new Blockers()
      for (const a of added) b.add(a)
      for (const probe of accesses)
        expect(b.conflicts(probe), `${JSON.stringify(added)} vs ${JSON.stringify(probe)}`).toBe(
          added.some((a) => conflict(a, probe)),
        )
    }
  })
})

describe('WaveQueue in the key mode', () => {
  it('the first sender goes at once; a later one once the senders before it passed the wave', () => {
    const q = new WaveQueue({ senders: ['c', 'a', 'b'] })
    add(q, 'b', 1, 0, [write('x')])
    // a has not passed wave 0: its command there might write x and sort before.
    expect(drain(q)).toEqual([])
    add(q, 'a', 1, 0, [write('y')])
    expect(drain(q)).toEqual(['a:1/0!', 'b:1/0!'])
    expect(q.ahead).toBe(2)
    add(q, 'c', 1, 0, [read('x'), write('z')])
    expect(drain(q)).toEqual(['c:1/0!', 'c:1/1!'])
    q.complete(0, ['a:1', 'b:1', 'c:1'])
    expect(drain(q)).toEqual([])
    expect(q.wave).toBe(1)
    expect(q.ahead).toBe(0)
  })

  it('a conflicting command waits for the one before it; a commuting one passes it', () => {
    const q = new WaveQueue({ senders: ['a', 'b'] })
    // a's own message, not yet durable: its commands block, and a has not passed the wave.
    add(q, 'a', 1, 0, [write('x')], false)
    add(q, 'b', 1, 0, [read('x'), write('y')])
    expect(drain(q)).toEqual([])
    q.reached('a', 0)
    // a passed the wave (its message is known) but is not confirmed: b's read of x waits,
    // b's write of y does not.
    expect(drain(q)).toEqual(['b:1/1!'])
    q.confirm('a:1')
    expect(drain(q)).toEqual(['a:1/0!', 'b:1/0!'])
  })

  it('an ack of a later depth shows that a sender has nothing in the wave', () => {
    const q = new WaveQueue({ senders: ['a', 'b'] })
    add(q, 'b', 1, 0, [ALL])
    expect(drain(q)).toEqual([])
    add(q, 'a', 1, 1, []) // a's first message is of depth 1: nothing of it in wave 0
    expect(drain(q)).toEqual(['b:1/0!'])
  })

  it("an 'all' command blocks everything after it and waits for everything before it", () => {
    const q = new WaveQueue({ senders: ['a', 'b', 'c'] })
    add(q, 'a', 1, 0, [write('x'), ALL, read('k')], false)
    q.reached('a', 0)
    add(q, 'b', 1, 0, [write()])
    add(q, 'c', 1, 0, [read('zz')])
    expect(drain(q)).toEqual([])
    q.confirm('a:1')
    expect(drain(q)).toEqual(['a:1/0!', 'a:1/1!', 'a:1/2!', 'b:1/0!', 'c:1/0!'])
  })

  it('later waves wait for the current one to complete, then go in key order', () => {
    const q = new WaveQueue({ senders: ['a', 'b'] })
    add(q, 'b', 1, 0, [write('x')])
    add(q, 'b', 2, 1, [write('y')])
    add(q, 'a', 1, 1, [write('x')]) // a passed wave 0 without a message in it
    expect(drain(q)).toEqual(['b:1/0!'])
    q.complete(0, ['b:1'])
    // wave 1 is current now: a first (a < b), then b's (no conflict anyway).
    expect(drain(q)).toEqual(['a:1/0!', 'b:2/0!'])
  })

  it('at completion the rest goes in key order, after the early ones', () => {
    const q = new WaveQueue({ senders: ['a', 'b', 'c'] })
    add(q, 'c', 1, 0, [write('x')])
    add(q, 'b', 1, 0, [write('y')])
    expect(drain(q)).toEqual([])
    q.complete(0, ['a:0', 'b:1', 'c:1'].slice(1))
    expect(drain(q)).toEqual(['b:1/0', 'c:1/0'])
  })

  it('honours holdAfter (barrier) and notes early deliveries missing from the complete wave', () => {
    const q = new WaveQueue({ senders: ['a', 'b'] })
    q.barrier = -1
    add(q, 'a', 1, 0, [write('x')])
    expect(drain(q)).toEqual([])
    q.barrier = undefined
    expect(drain(q)).toEqual(['a:1/0!'])
    q.complete(0, [])
    expect(drain(q)).toEqual([])
    expect(q.lost.map((c) => c.id)).toEqual(['a:1/0'])
  })
})

/** A deterministic PRNG for the property runs. */
function prng(seed: number) {
  let s = seed >>> 0 || 1
  return () => {
    s ^= s << 13
    s >>>= 0
    s ^= s >>> 17
    s ^= s << 5
    s >>>= 0
    return s / 2 ** 32
  }
}

interface Sent {
  readonly sender: NodeId
  readonly seq: number
  readonly depth: number
  readonly accesses: readonly Access[]
}

/** Each sender's chain: one message per wave it takes part in (some waves skipped). */
function history(random: () => number, senders: readonly NodeId[], waves: number): Sent[][] {
  const keys = ['k0', 'k1', 'k2', 'k3']
  return senders.map((sender) => {
    const chain: Sent[] = []
    let seq = 0
    for (let depth = 0; depth < waves; depth++) {
      if (random() < 0.2 && depth < waves - 1) continue
      const n = random() < 0.3 ? 0 : 1 + Math.floor(random() * 3)
      const accesses: Access[] = []
      for (let i = 0; i < n; i++) {
        const draw = random()
        const k = keys[Math.floor(random() * keys.length)]!
        accesses.push(
          draw < 0.05
            ? ALL
            : draw < 0.4
              ? read(k)
              : draw < 0.9
                ? write(k)
                : write(k, keys[Math.floor(random() * keys.length)]!),
        )
      }
      chain.push({ sender, seq: ++seq, depth, accesses })
    }
    return chain
  })
}

/**
 * One replica (`self`) receiving the chains in a random interleaving (each chain in order);
 * its own messages become durable at random later points. Psync's part: a wave completes once
 * every sender passed it. Returns the delivery sequence (command ids).
 */
function replay(
  random: () => number,
  chains: readonly Sent[][],
  senders: readonly NodeId[],
  self: NodeId,
  queue: WaveQueue,
  waves: number,
): { sequence: string[]; early: number } {
  const out: string[] = []
  let early = 0
  const cursor = chains.map(() => 0)
  const passed = new Map<NodeId, number>()
  const notDurable: Sent[] = []
  const byDepth = new Map<number, string[]>()
  let complete = 0
  const pump = () => {
    for (;;) {
      while (complete < waves && senders.every((s) => (passed.get(s) ?? -1) >= complete)) {
        queue.complete(complete, byDepth.get(complete) ?? [])
        complete++
      }
      const n = queue.next()
      if (n === undefined) return
      out.push(n.command.id)
      if (n.early) early++
    }
  }
  for (;;) {
    const open = chains.map((_, i) => i).filter((i) => cursor[i]! < chains[i]!.length)
    if (open.length === 0 && notDurable.length === 0) break
    if (notDurable.length > 0 && (open.length === 0 || random() < 0.3)) {
      const m = notDurable.shift()!
      queue.confirm(`${m.sender}:${m.seq}`)
      queue.reached(m.sender, m.depth)
      passed.set(m.sender, m.depth)
    } else {
      const i = open[Math.floor(random() * open.length)]!
      const m = chains[i]![cursor[i]!++]!
      const own = m.sender === self
      const { m: pm, commands } = message(m.sender, m.seq, m.depth, m.accesses)
      let ids = byDepth.get(m.depth)
      if (ids === undefined) byDepth.set(m.depth, (ids = []))
      ids.push(pm.id)
      if (commands.length > 0) queue.add(pm, commands, !own)
      if (own) notDurable.push(m)
      else {
        queue.reached(m.sender, m.depth)
        passed.set(m.sender, m.depth)
      }
    }
    pump()
  }
  pump()
  return { sequence: out, early }
}

/** Problems: conflicting pairs out of key order, or a command delivered twice or never. */
function check(chains: readonly Sent[][], sequence: readonly string[]): string[] {
  const all: WaveCommand[] = []
  for (const chain of chains)
    for (const m of chain) all.push(...message(m.sender, m.seq, m.depth, m.accesses).commands)
  const problems: string[] = []
  if (new Set(sequence).size !== sequence.length) problems.push('a command delivered twice')
  if (sequence.length !== all.length)
    problems.push(`${sequence.length} of ${all.length} commands delivered`)
  const at = new Map(sequence.map((id, i) => [id, i]))
  const byKey = (a: WaveCommand, b: WaveCommand) =>
    a.message.depth - b.message.depth || compareKey(a, b)
  for (let x = 0; x < all.length; x++)
    for (let y = 0; y < all.length; y++) {
      const a = all[x]!
      const b = all[y]!
      if (byKey(a, b) >= 0 || !conflict(a.access!, b.access!)) continue
      if ((at.get(a.id) ?? -1) > (at.get(b.id) ?? -1))
        problems.push(`${a.id} and ${b.id} conflict but went out of key order`)
    }
  return problems
}

describe('the keyed rule over random schedules', () => {
  const senders = ['n1', 'n2', 'n3']

  it('delivers every conflicting pair in key order at every replica (300 histories × 3 replicas)', () => {
    let early = 0
    for (let seed = 1; seed <= 300; seed++) {
      const random = prng(seed)
      const chains = history(random, senders, 6)
      for (const self of senders) {
        const queue = new WaveQueue({ senders })
        const { sequence, early: e } = replay(random, chains, senders, self, queue, 6)
        expect(check(chains, sequence), `seed ${seed} at ${self}`).toEqual([])
        early += e
      }
    }
    // Early delivery is exercised, not just delivery at completion.
    expect(early).toBeGreaterThan(1000)
  })

  it('the same property rejects a rule that delivers in arrival order', () => {
    let rejected = 0
    for (let seed = 1; seed <= 50; seed++) {
      const random = prng(seed)
      const chains = history(random, senders, 6)
      for (const self of senders) {
        const { sequence } = replay(
          random,
          chains,
          senders,
          self,
          new ArrivalOrderQueue({ senders }),
          6,
        )
        if (check(chains, sequence).length > 0) rejected++
      }
    }
    expect(rejected).toBeGreaterThan(20)
  })
})
