/**
 * A replica's waiter logic over a one-replica Dispatcher (`fixtures/local-dispatcher.ts`):
 * blocking in and rd woken by claims, cancels at every moment of a request's life, and what an
 * unavailable group gives.
 */
import { describe, expect, it } from 'vitest'
import type { TupleSpaceError } from '../src/errors.js'
import { entries } from '../src/machine.js'
import { TupleSpaceReplica } from '../src/replica.js'
import { formal } from '../src/tuple.js'
import { type LocalDispatcher, localDispatcher } from './fixtures/local-dispatcher.js'

function setup(mode: 'auto' | 'manual' = 'auto', d: LocalDispatcher = localDispatcher(mode)) {
  const replica = new TupleSpaceReplica({ dispatcher: () => d, origin: 'a', session: 's1' })
  return { d, replica }
}
const settle = <T>(p: Promise<T>) =>
  p.then(
    (value) => ({ ok: true as const, value }),
    (error: TupleSpaceError) => ({ ok: false as const, code: error.code }),
  )
const turn = () => new Promise((r) => setImmediate(r))

describe('blocking in and rd', () => {
  it('an in waits as a registered waiter; an out wakes it through one ordered claim', async () => {
    const { d, replica } = setup()
    const waiting = replica.in(['job', formal.int])
    await turn()
    expect(d.state().waiters.size).toBe(1)
    await replica.out(['job', 1])
    expect(await waiting.result).toEqual(['job', 1])
    expect(d.state().waiters.size).toBe(0)
    expect(d.state().size).toBe(0)
    expect(d.log.map((c) => c.tag)).toEqual(['take', 'out', 'claim'])
  })

  it('two waiters and one tuple: one gets it, the other waits for the next', async () => {
    const { d, replica } = setup()
    const w1 = replica.in(['t', formal.any])
    const w2 = replica.in(['t', formal.any])
    await turn()
    await replica.out(['t', 'first'])
    await turn()
    const first = await Promise.race([w1.result, w2.result])
    expect(first).toEqual(['t', 'first'])
    expect(d.state().waiters.size).toBe(1)
    await replica.out(['t', 'second'])
    const both = await Promise.all([w1.result, w2.result])
    expect(both.map((t) => t[1]).sort()).toEqual(['first', 'second'])
    // The second waiter was not claimed while the only tuple was reserved for the first.
    expect(replica.stats().claimsLost).toBe(0)
  })

  it('a blocked rd reads the tuple and leaves it; inp and rdp answer at once', async () => {
    const { d, replica } = setup()
    expect(await replica.inp(['cfg', formal.any]).result).toBeUndefined()
    expect(await replica.rdp(['cfg', formal.any]).result).toBeUndefined()
    const reading = replica.rd(['cfg', formal.any])
    await turn()
    await replica.out(['cfg', 1])
    expect(await reading.result).toEqual(['cfg', 1])
    expect(d.state().size).toBe(1)
    expect(await replica.rdp(['cfg', formal.any]).result).toEqual(['cfg', 1])
    expect(await replica.inp(['cfg', formal.any]).result).toEqual(['cfg', 1])
    expect(d.state().size).toBe(0)
  })
})

describe('cancel', () => {
  it('while waiting: CANCELLED at once, the waiter removed by an ordered cancel; a later out stays', async () => {
    const { d, replica } = setup()
    const w = replica.in(['x'])
    await turn()
    expect(w.cancel()).toBe(true)
    expect(await settle(w.result)).toEqual({ ok: false, code: 'CANCELLED' })
    await turn()
    expect(d.state().waiters.size).toBe(0)
    await replica.out(['x'])
    await turn()
    expect(d.state().size).toBe(1)
    expect(d.log.map((c) => c.tag)).toEqual(['take', 'cancel', 'out'])
    expect(w.cancel()).toBe(false)
  })

  it('while its claim is in flight: the claim takes the tuple, and it is put back under its own key', async () => {
    const { d, replica } = setup('manual')
    const w = replica.in(['x', formal.int])
    await d.flush() // the take registers the waiter
    const out = replica.out(['x', 1])
    await turn()
    d.step() // the out is applied; the replica sees the match and claims
    await turn()
    expect(d.queued()).toEqual(['claim'])
    const key = entries(d.state()).map((e) => [e.epoch, e.origin, e.session, e.seq])
    w.cancel()
    expect(await settle(w.result)).toEqual({ ok: false, code: 'CANCELLED' })
    await d.flush() // the claim takes it, the replica releases it
    await out
    expect(d.log.map((c) => c.tag)).toEqual(['take', 'out', 'claim', 'release'])
    expect(entries(d.state()).map((e) => [e.epoch, e.origin, e.session, e.seq])).toEqual(key)
    expect(d.state().waiters.size).toBe(0)
    expect(replica.stats().released).toBe(1)
  })

  it('while its take is in flight (or an inp’s): a tuple it takes comes back', async () => {
    const { d, replica } = setup('manual')
    const put = replica.out(['y'])
    await d.flush()
    await put
    const blocking = replica.in(['y'])
    const probing = replica.inp(['y'])
    blocking.result.catch(() => {})
    probing.result.catch(() => {})
    blocking.cancel()
    probing.cancel()
    await d.flush()
    expect(d.log.map((c) => c.tag)).toEqual(['out', 'take', 'take', 'release'])
    expect(d.state().size).toBe(1)
    expect(d.state().waiters.size).toBe(0)
  })

  it('a blocking take that registered a waiter after the cancel: removed', async () => {
    const { d, replica } = setup('manual')
    const w = replica.in(['z'])
    w.result.catch(() => {})
    w.cancel()
    await d.flush()
    expect(d.log.map((c) => c.tag)).toEqual(['take', 'cancel'])
    expect(d.state().waiters.size).toBe(0)
  })
})

describe('an unavailable group', () => {
  it('RECOVERING, or refused unsent: nothing was done; anything else: UNAVAILABLE, outcome unknown', async () => {
    const { d, replica } = setup()
    d.failWith('RECOVERING')
    expect(await settle(replica.out(['a']))).toEqual({ ok: false, code: 'RECOVERING' })
    expect(await settle(replica.inp(['a']).result)).toEqual({ ok: false, code: 'RECOVERING' })
    // A minority replica refuses at submit: never sent, nothing registered (no cancel sent).
    d.failWith('NO_PRIMARY', true)
    expect(await settle(replica.out(['a']))).toEqual({ ok: false, code: 'REFUSED' })
    expect(await settle(replica.in(['a']).result)).toEqual({ ok: false, code: 'REFUSED' })
    d.failWith('CLOSED', true)
    expect(await settle(replica.rd(['a']).result)).toEqual({ ok: false, code: 'REFUSED' })
    d.failWith(undefined)
    replica.refresh()
    await d.flush()
    expect(d.log.map((c) => c.tag)).toEqual([]) // no cancel: nothing to remove
    // Sent, then lost track of (excluded): unknown.
    d.failWith('NO_PRIMARY')
    expect(await settle(replica.out(['a']))).toEqual({ ok: false, code: 'UNAVAILABLE' })
    expect(await settle(replica.in(['a']).result)).toEqual({ ok: false, code: 'UNAVAILABLE' })
    const none = new TupleSpaceReplica({ dispatcher: () => undefined, origin: 'a', session: 's' })
    expect(await settle(none.out(['a']))).toEqual({ ok: false, code: 'RECOVERING' })
  })

  it('a refused claim is tried again after refresh()', async () => {
    const { d, replica } = setup('manual')
    const w = replica.in(['job'])
    await d.flush()
    const out = replica.out(['job'])
    d.failWith('CLOSED')
    d.step() // the out is applied; the claim is refused
    await turn()
    await turn()
    d.failWith(undefined)
    await d.flush()
    expect(d.log.map((c) => c.tag)).toEqual(['take', 'out'])
    replica.refresh()
    await d.flush()
    expect(await w.result).toEqual(['job'])
    await out
  })

  it('bad templates and tuples are refused before anything is sent', async () => {
    const { d, replica } = setup()
    expect(await settle(replica.in([{ formal: 'x' }] as never).result)).toEqual({
      ok: false,
      code: 'BAD_TEMPLATE',
    })
    expect(await settle(replica.out([Symbol('x')] as never))).toEqual({
      ok: false,
      code: 'BAD_TUPLE',
    })
    expect(d.log).toEqual([])
  })

  it('forgetEarlierSessions removes this origin’s old waiters', async () => {
    const d = localDispatcher()
    const old = new TupleSpaceReplica({ dispatcher: () => d, origin: 'a', session: 'old' })
    const other = new TupleSpaceReplica({ dispatcher: () => d, origin: 'b', session: 'old' })
    old.in(['x'])
    other.in(['x'])
    await turn()
    expect(d.state().waiters.size).toBe(2)
    const restarted = new TupleSpaceReplica({ dispatcher: () => d, origin: 'a', session: 'new' })
    restarted.forgetEarlierSessions()
    await turn()
    await turn()
    expect([...d.state().waiters.values()].map((w) => w.origin)).toEqual(['b'])
  })
})

describe('review regressions', () => {
  it('a claim that takes another tuple than the one it reserved frees the reserved one for the next waiter (no tick needed)', async () => {
    const { d, replica } = setup('manual')
    const any = replica.in(['x', formal.any])
    const one = replica.in(['x', 1])
    let oneGot: unknown
    void one.result.then((t) => (oneGot = t))
    await d.flush() // both registered
    const put = replica.out(['x', 1])
    d.step() // applied here: `any` claims ['x', 1], `one` must skip it (reserved)
    // Another replica's out of the same wave, older in key order (origin '0' < 'a'), comes next.
    void d.submit('out', { origin: '0', session: '', seq: 0, tuple: ['x', 'old'] })
    await turn()
    expect(d.queued()).toEqual(['out', 'claim'])
    d.step()
    await turn()
    d.step() // the claim takes the oldest match, ['x', 'old']: ['x', 1] is free again
    await d.flush()
    await put
    expect(await any.result).toEqual(['x', 'old'])
    expect(oneGot).toEqual(['x', 1])
    expect(d.state().size).toBe(0)
    expect(d.state().waiters.size).toBe(0)
  })

  it('cancel after a refused claim that the group applied: UNAVAILABLE (it took a tuple), not CANCELLED', async () => {
    const { d, replica } = setup('manual')
    const w = replica.in(['job'])
    await d.flush()
    const put = replica.out(['job'])
    d.step() // the out; the replica claims
    await turn()
    expect(d.queued()).toEqual(['claim'])
    d.stepRefused('CLOSED') // applied — the waiter served, the tuple gone — but refused here
    await turn()
    await put
    expect(d.state().size).toBe(0)
    const outcome = settle(w.result)
    expect(w.cancel()).toBe(true)
    replica.refresh() // the cancel goes once the group takes commands again
    await d.flush()
    expect(d.log.map((c) => c.tag)).toEqual(['take', 'out', 'claim', 'cancel'])
    expect(await outcome).toEqual({ ok: false, code: 'UNAVAILABLE' })
  })

  it('cancel after a refused claim that the group did not apply: CANCELLED once the ordered cancel removed the waiter', async () => {
    const { d, replica } = setup('manual')
    const w = replica.in(['job'])
    await d.flush()
    const put = replica.out(['job'])
    d.failWith('CLOSED')
    d.step() // the out; the claim is refused before it is sent
    await turn()
    await turn()
    d.failWith(undefined)
    await put
    const outcome = settle(w.result)
    expect(w.cancel()).toBe(true)
    replica.refresh()
    await d.flush()
    expect(d.log.map((c) => c.tag)).toEqual(['take', 'out', 'cancel'])
    expect(await outcome).toEqual({ ok: false, code: 'CANCELLED' })
    expect(d.state().size).toBe(1)
    expect(d.state().waiters.size).toBe(0)
  })
})

describe('a graceful stop', () => {
  it('drain() waits for a claim in flight of a cancelled request and its release: the tuple comes back before the replica closes', async () => {
    const { d, replica } = setup('manual')
    const w = replica.in(['x'])
    w.result.catch(() => {})
    await d.flush()
    const put = replica.out(['x'])
    d.step()
    await turn()
    expect(d.queued()).toEqual(['claim'])
    w.cancel() // the connection closed (the server's stop closes them all)
    let drained = false
    const draining = replica.drain(5_000).then(() => (drained = true))
    await turn()
    expect(drained).toBe(false)
    d.step() // the claim takes the tuple for nobody …
    await turn()
    expect(drained).toBe(false)
    expect(d.queued()).toEqual(['release']) // … and puts it back
    await d.flush()
    await draining
    await put
    replica.close()
    expect(d.log.map((c) => c.tag)).toEqual(['take', 'out', 'claim', 'release'])
    expect(d.state().size).toBe(1)
  })

  it('drain() resolves at once when nothing is in flight, and after its timeout when the group never answers', async () => {
    const { d, replica } = setup('manual')
    await replica.drain(5_000)
    const w = replica.in(['x'])
    w.result.catch(() => {})
    const started = Date.now()
    await replica.drain(50) // the take is never applied
    expect(Date.now() - started).toBeGreaterThanOrEqual(40)
    expect(d.queued()).toEqual(['take'])
  })
})
