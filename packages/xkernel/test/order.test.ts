import { describe, expect, it } from 'vitest'
import { Counters, EventBus, notApplied, type OrderedCommand } from '../src/index.js'
import {
  Acknowledger,
  CommandBatcher,
  type CommandBatcherOptions,
  commandId,
  followPrimary,
  numberOption,
  type QueuedCommand,
  resolveOrderOptions,
  WaveSequence,
} from '../src/order.js'
import { ManualClock } from './fakes.js'

class TestError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message)
  }
}

const error = (code: string, message: string) => new TestError(code, message)
const bytes = (...values: number[]) => Uint8Array.from(values)

/** What a session would deliver for command `index` of `message`. */
function ordered(message: string, index: number, command = bytes()): OrderedCommand {
  return {
    id: commandId(message, index),
    message,
    sender: 'a',
    command,
    position: { wave: 0, delivered: index + 1 },
    restored: false,
  }
}

function setup<T = undefined>(
  options: Partial<Omit<CommandBatcherOptions<T>, 'send' | 'error'>> = {},
  send?: (batch: readonly QueuedCommand<T>[]) => { id: string; seq: number },
) {
  const clock = new ManualClock()
  const counters = new Counters()
  const events = new EventBus()
  const sent: (readonly QueuedCommand<T>[])[] = []
  let seq = 0
  const batcher = new CommandBatcher<T>({ clock, counters, events, group: { port: 'g' } }, {
    maxBatch: 256,
    maxBatchBytes: 1024,
    error,
    send:
      send ??
      ((batch) => {
        sent.push(batch)
        seq++
        return { id: `a:${seq}`, seq }
      }),
    ...options,
  } as CommandBatcherOptions<T>)
  return { clock, counters, events, sent, batcher }
}

/** Records how a promise settles, handling its rejection at once (no unhandled rejections). */
function settle(promise: Promise<OrderedCommand>): { value?: OrderedCommand; error?: TestError } {
  const out: { value?: OrderedCommand; error?: TestError } = {}
  promise.then(
    (value) => {
      out.value = value
    },
    (e: TestError) => {
      out.error = e
    },
  )
  return out
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve))

describe('resolveOrderOptions', () => {
  it('fills in the defaults', () => {
    expect(resolveOrderOptions({}, error)).toEqual({
      ackDelayMs: 1,
      maxBatch: 256,
      maxBatchBytes: 65536,
    })
  })

  it('keeps valid values (ackDelayMs may be 0 or fractional)', () => {
    expect(resolveOrderOptions({ ackDelayMs: 0.5, maxBatch: 1, maxBatchBytes: 7 }, error)).toEqual({
      ackDelayMs: 0.5,
      maxBatch: 1,
      maxBatchBytes: 7,
    })
    expect(resolveOrderOptions({ ackDelayMs: 0 }, error).ackDelayMs).toBe(0)
  })

  it.each([
    [{ ackDelayMs: -1 }, 'order option ackDelayMs must be a number >= 0, got -1'],
    [{ ackDelayMs: Number.NaN }, 'order option ackDelayMs must be a number >= 0, got NaN'],
    [
      { ackDelayMs: Number.POSITIVE_INFINITY },
      'order option ackDelayMs must be a number >= 0, got Infinity',
    ],
    [{ maxBatch: 0 }, 'order option maxBatch must be an integer >= 1, got 0'],
    [{ maxBatch: 1.5 }, 'order option maxBatch must be an integer >= 1, got 1.5'],
    [{ maxBatchBytes: '9' }, 'order option maxBatchBytes must be an integer >= 1, got 9'],
  ])('rejects %o through the error factory', (options, message) => {
    const thrown = (() => {
      try {
        resolveOrderOptions(options as never, error)
      } catch (e) {
        return e
      }
      return undefined
    })()
    expect(thrown).toBeInstanceOf(TestError)
    expect(thrown).toMatchObject({ code: 'INVALID_ARGUMENT', message })
  })

  it('reports the first bad option, with the given label', () => {
    expect(() =>
      resolveOrderOptions({ ackDelayMs: -1, maxBatch: 0 }, error, 'myOrder option'),
    ).toThrow('myOrder option ackDelayMs must be a number >= 0, got -1')
  })

  it('numberOption checks an Order’s own options the same way', () => {
    const options: { recheckMs?: number } = {}
    expect(numberOption(options, 'recheckMs', { fallback: 10, min: 1 }, error)).toBe(10)
    expect(() =>
      numberOption({ recheckMs: 0 }, 'recheckMs', { fallback: 10, min: 1 }, error, 'x option'),
    ).toThrow('x option recheckMs must be a number >= 1, got 0')
  })
})

describe('CommandBatcher', () => {
  it('sends the commands of one turn in one batch on a 0 ms timer', () => {
    const { clock, counters, sent, batcher } = setup()
    const original = bytes(1, 2)
    void batcher.submit(original)
    void batcher.submit(bytes(3))
    original[0] = 9 // the batcher keeps its own copy
    expect(sent).toHaveLength(0)
    expect(batcher.queued).toBe(2)
    clock.advance(0)
    expect(sent.map((b) => b.map((c) => [...c.command]))).toEqual([[[1, 2], [3]]])
    expect(counters.snapshot()).toEqual({ batches: 1, submitted: 2 })
    expect(batcher.queued).toBe(0)
    expect(batcher.awaiting).toBe(2)
    expect(clock.pending).toBe(0)
  })

  it("'agreed': resolves a submit when its command is delivered, and only then", async () => {
    const { clock, batcher } = setup()
    const first = settle(batcher.submit(bytes(1), { level: 'agreed' }))
    const second = settle(batcher.submit(bytes(2), { level: 'agreed' }))
    clock.advance(0)
    batcher.delivered(ordered('b:1', 0)) // someone else's command: nothing to resolve
    const delivered = ordered('a:1', 1)
    batcher.delivered(delivered)
    await tick()
    expect(second.value).toBe(delivered)
    expect(first).toEqual({})
    expect(batcher.awaiting).toBe(1)
  })

  it('take() hands out the resolver once, for Orders that settle after their handlers', async () => {
    const { clock, batcher } = setup()
    const result = settle(batcher.submit(bytes(1), { level: 'agreed' }))
    clock.advance(0)
    const resolve = batcher.take(commandId('a:1', 0))
    expect(batcher.take(commandId('a:1', 0))).toBeUndefined()
    batcher.close() // no longer awaited: closing does not reject it
    resolve?.(ordered('a:1', 0))
    await tick()
    expect(result.value?.id).toBe('a:1/0')
  })

  it('deliveredAt() settles by message and index; each command once, others untouched', async () => {
    const { clock, batcher } = setup()
    const results = [0, 1, 2].map((i) => settle(batcher.submit(bytes(i), { level: 'agreed' })))
    clock.advance(0)
    const second = ordered('a:1', 1)
    batcher.deliveredAt('a:1', 1, second)
    batcher.deliveredAt('a:1', 1, ordered('a:1', 1)) // again: already settled
    batcher.deliveredAt('a:1', 7, ordered('a:1', 7)) // no such command
    batcher.deliveredAt('b:1', 0, ordered('b:1', 0)) // not an own message
    await tick()
    expect(results.map((r) => r.value)).toEqual([undefined, second, undefined])
    expect(batcher.awaiting).toBe(2)
    batcher.deliveredAt('a:1', 0, ordered('a:1', 0))
    batcher.delivered(ordered('a:1', 2))
    await tick()
    expect(results.map((r) => r.value?.id)).toEqual(['a:1/0', 'a:1/1', 'a:1/2'])
    expect(batcher.awaiting).toBe(0)
  })

  it("'safe' (the default): resolves once delivered here and its message is stable, in either order", async () => {
    const { clock, batcher } = setup()
    const early = settle(batcher.submit(bytes(1))) // a:1/0
    clock.advance(0)
    const late = settle(batcher.submit(bytes(2))) // a:2/0
    clock.advance(0)
    const third = settle(batcher.submit(bytes(3))) // a:3/0
    clock.advance(0)
    // a:1 delivered first, stable later.
    batcher.deliveredAt('a:1', 0, ordered('a:1', 0))
    await tick()
    expect(early).toEqual({})
    batcher.stableUpTo(1)
    await tick()
    expect(early.value?.id).toBe('a:1/0')
    // a:2 and a:3 stable first (one call covers both), delivered later.
    batcher.stableUpTo(3)
    await tick()
    expect(late).toEqual({})
    batcher.delivered(ordered('a:2', 0))
    const resolve = batcher.take(commandId('a:3', 0))
    await tick()
    expect(late.value?.id).toBe('a:2/0')
    expect(third).toEqual({})
    resolve?.(ordered('a:3', 0))
    await tick()
    expect(third.value?.id).toBe('a:3/0')
    expect(batcher.awaiting).toBe(0)
    batcher.stableUpTo(2) // backwards: nothing happens
  })

  it("'safe': a take() that stability overtakes before its settler runs still resolves", async () => {
    const { clock, batcher } = setup()
    const result = settle(batcher.submit(bytes(1)))
    clock.advance(0)
    const resolve = batcher.take(commandId('a:1', 0))
    batcher.stableUpTo(1) // e.g. a delivery handler made it stable
    resolve?.(ordered('a:1', 0))
    await tick()
    expect(result.value?.id).toBe('a:1/0')
    expect(batcher.awaiting).toBe(0)
  })

  it('rejects submit options that are not { level: agreed | safe }', async () => {
    const { batcher } = setup()
    for (const options of [{ level: 'uniform' }, 'safe', null, { level: 3 }]) {
      await expect(batcher.submit(bytes(1), options as never)).rejects.toMatchObject({
        code: 'INVALID_ARGUMENT',
        message: expect.stringMatching(/options must be \{ level\?: 'agreed' \| 'safe' \}/),
      })
    }
    expect(batcher.queued).toBe(0)
  })

  it('fail() rejects queued and awaited submits with its error, and every later one', async () => {
    const { clock, batcher } = setup()
    const awaited = settle(batcher.submit(bytes(1)))
    clock.advance(0)
    const queued = settle(batcher.submit(bytes(2), { level: 'agreed' }))
    const stop = new TestError('WAVE_GAP', 'stopped')
    batcher.fail(stop)
    await tick()
    expect(awaited.error).toBe(stop)
    expect(queued.error).toBe(stop)
    await expect(batcher.submit(bytes(3))).rejects.toBe(stop)
    expect(batcher.awaiting).toBe(0)
    expect(clock.pending).toBe(0)
  })

  it('take() ignores ids that are not <message>/<index> of an awaited batch', () => {
    const { clock, batcher } = setup()
    void batcher.submit(bytes(1))
    clock.advance(0)
    for (const id of ['a:1', 'a:1/', 'a:1/x', 'a:1/-1', 'a:1/0.5', 'a:2/0', '', '/0'])
      expect(batcher.take(id), id).toBeUndefined()
    expect(batcher.awaiting).toBe(1)
    expect(batcher.take('a:1/0')).toBeTypeOf('function')
  })

  it('keeps its own copy of every command across many slabs, big and small', () => {
    const { clock, sent, batcher } = setup({ maxBatchBytes: 64 * 1024 })
    const sizes = [0, 1, 100, 4096, 4097, 20_000, 100, 64 * 1024]
    const submitted: Uint8Array[] = []
    // Enough commands to fill several 64 KiB slabs: they must not overlap or move.
    for (let round = 0; round < 30; round++) {
      for (const size of sizes) {
        const command = new Uint8Array(size).fill((round * 7 + size) & 0xff)
        submitted.push(command.slice())
        void batcher.submit(command)
        command.fill(0xee) // the caller reuses its buffer at once
      }
    }
    clock.advance(0)
    const got = sent.flat().map((c) => c.command)
    expect(got.length).toBe(submitted.length)
    for (let i = 0; i < got.length; i++) expect(got[i], `command ${i}`).toEqual(submitted[i])
  })

  it('sends at once when the batch holds maxBatch commands', () => {
    const { clock, sent, batcher } = setup({ maxBatch: 2 })
    for (let i = 0; i < 5; i++) void batcher.submit(bytes(i))
    expect(sent.map((b) => b.length)).toEqual([2, 2])
    clock.advance(0)
    expect(sent.map((b) => b.length)).toEqual([2, 2, 1])
  })

  it('sends the queue first when a command would take it over maxBatchBytes', () => {
    const { clock, sent, batcher } = setup({ maxBatchBytes: 4 })
    void batcher.submit(bytes(1, 2, 3))
    void batcher.submit(bytes(4)) // exactly 4: still one batch
    void batcher.submit(bytes(5))
    expect(sent.map((b) => b.map((c) => [...c.command]))).toEqual([[[1, 2, 3], [4]]])
    clock.advance(0)
    expect(sent).toHaveLength(2)
  })

  it('rejects bad commands through the error factory and queues nothing', async () => {
    const { counters, batcher } = setup({ maxBatchBytes: 2 })
    await expect(batcher.submit('x' as never)).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: 'submit() takes the command as a Uint8Array',
    })
    await expect(batcher.submit(bytes(1, 2, 3))).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: 'command of 3 bytes exceeds maxBatchBytes (2)',
    })
    expect(batcher.queued).toBe(0)
    expect(counters.get('submitted')).toBe(0)
  })

  it('raises trace.sent for each command sent, with layer order', () => {
    const { clock, events, batcher } = setup()
    const traced: unknown[] = []
    events.on('trace.sent', (m) => traced.push(m))
    void batcher.submit(bytes(1))
    void batcher.submit(bytes(2))
    clock.advance(0)
    expect(traced).toEqual([
      { group: 'g', layer: 'order', id: 'a:1/0' },
      { group: 'g', layer: 'order', id: 'a:1/1' },
    ])
  })

  it('runs afterSend once the batch is awaited', async () => {
    let batcher!: CommandBatcher
    const setupResult = setup({
      afterSend: () => batcher.delivered(ordered('a:1', 0)),
    })
    batcher = setupResult.batcher
    const result = settle(batcher.submit(bytes(1), { level: 'agreed' }))
    setupResult.clock.advance(0)
    await tick()
    expect(result.value?.id).toBe('a:1/0')
  })

  it('rejects the batch with the error send throws, and does not count it', async () => {
    const failure = new TestError('PAYLOAD_TOO_LARGE', 'too large')
    const { counters, batcher } = setup({}, () => {
      throw failure
    })
    const results = [settle(batcher.submit(bytes(1))), settle(batcher.submit(bytes(2)))]
    expect(batcher.flush()).toBe(false) // nothing went out
    await tick()
    expect(results.map((r) => r.error)).toEqual([failure, failure])
    expect(notApplied(failure)).toBe(true) // nothing went out: the submitters may try again
    expect(counters.get('batches')).toBe(0)
    expect(batcher.awaiting).toBe(0)
  })

  it('tags each command at submit; a tag that throws rejects the submit', async () => {
    const bad = new TestError('BAD_CLASS', 'no class')
    const { clock, sent, batcher } = setup<number>({
      tag: (command) => {
        if (command[0] === 0) throw bad
        return command[0]! * 10
      },
    })
    await expect(batcher.submit(bytes(0))).rejects.toBe(bad)
    expect(notApplied(bad)).toBe(true)
    void batcher.submit(bytes(1))
    void batcher.submit(bytes(2))
    clock.advance(0)
    expect(sent[0]!.map((c) => c.tag)).toEqual([10, 20])
  })

  it('flush() says whether there was anything to send', () => {
    const { sent, batcher } = setup()
    expect(batcher.flush()).toBe(false)
    void batcher.submit(bytes(1))
    expect(batcher.flush()).toBe(true)
    expect(sent).toHaveLength(1)
  })

  it('close() rejects queued and awaited submits and refuses new ones', async () => {
    const { clock, sent, batcher } = setup()
    const awaited = settle(batcher.submit(bytes(1)))
    clock.advance(0)
    const queued = settle(batcher.submit(bytes(2)))
    batcher.close()
    await tick()
    // Sent: the outcome is unknown. Queued, never sent: not applied anywhere, ever.
    expect(awaited.error).toBeInstanceOf(TestError)
    expect(awaited.error).toMatchObject({
      code: 'CLOSED',
      message: 'group g closed before the command was delivered',
    })
    expect(notApplied(awaited.error)).toBe(false)
    expect(queued.error).toBeInstanceOf(TestError)
    expect(queued.error).toMatchObject({
      code: 'CLOSED',
      message: 'group g closed before the command was sent',
      notApplied: true,
    })
    await expect(batcher.submit(bytes(3))).rejects.toMatchObject({
      code: 'CLOSED',
      message: 'group g is closed',
      notApplied: true,
    })
    expect(clock.pending).toBe(0)
    expect(batcher.flush()).toBe(false)
    expect(sent).toHaveLength(1)
    batcher.close() // idempotent
  })

  it("primary('minority'): refuses new submits, keeps the pending ones; 'primary' accepts again", async () => {
    const { clock, sent, batcher } = setup()
    const awaited = settle(batcher.submit(bytes(1)))
    clock.advance(0)
    const queued = settle(batcher.submit(bytes(2), { level: 'agreed' }))
    batcher.primary('minority', 4)
    const refused = settle(batcher.submit(bytes(3)))
    await tick()
    expect(refused.error).toBeInstanceOf(TestError)
    expect(refused.error).toMatchObject({
      code: 'NO_PRIMARY',
      message:
        'group g is in a minority partition (view 4): it cannot order until it reaches a majority again; the command was not sent',
      notApplied: true,
    })
    expect(batcher.queued).toBe(1) // the refused one was not queued
    clock.advance(0) // accepted before the partition: still sent, may be ordered once it heals
    expect(sent).toHaveLength(2)
    expect(batcher.awaiting).toBe(2)
    batcher.primary('primary', 5)
    const again = settle(batcher.submit(bytes(4), { level: 'agreed' }))
    clock.advance(0)
    batcher.stableUpTo(1)
    batcher.delivered(ordered('a:1', 0))
    batcher.delivered(ordered('a:2', 0))
    batcher.delivered(ordered('a:3', 0))
    await tick()
    expect([awaited, queued, again].map((r) => r.value?.id)).toEqual(['a:1/0', 'a:2/0', 'a:3/0'])
  })

  it("primary('excluded'): rejects every pending submit and every later one, for good", async () => {
    const { clock, sent, batcher } = setup()
    const safe = settle(batcher.submit(bytes(1))) // sent, awaiting delivery and stability
    const delivered = settle(batcher.submit(bytes(2))) // sent, delivered, awaiting stability
    const agreed = settle(batcher.submit(bytes(3), { level: 'agreed' })) // sent
    clock.advance(0)
    batcher.take('a:1/1')?.(ordered('a:1', 1))
    batcher.primary('minority', 6)
    const queued = settle(batcher.submit(bytes(4))) // refused: never queued
    batcher.primary('primary', 7)
    const late = settle(batcher.submit(bytes(5))) // queued, not sent
    batcher.primary('excluded', 8)
    await tick()
    expect(queued.error).toMatchObject({ code: 'NO_PRIMARY', notApplied: true })
    for (const { error } of [safe, delivered, agreed]) {
      expect(error).toBeInstanceOf(TestError)
      expect(error).toMatchObject({
        code: 'NO_PRIMARY',
        message:
          'group g: this replica was excluded from the primary partition (view 8) before the command was delivered here; its outcome is unknown here (the primary may have ordered it)',
      })
      expect(notApplied(error)).toBe(false)
    }
    expect(late.error).toMatchObject({
      code: 'NO_PRIMARY',
      message:
        'group g: this replica was excluded from the primary partition (view 8) before the command was sent',
      notApplied: true,
    })
    expect(batcher.queued).toBe(0)
    expect(batcher.awaiting).toBe(0)
    expect(clock.pending).toBe(0)
    expect(sent).toHaveLength(1)
    batcher.primary('primary', 9) // excluded is final
    await expect(batcher.submit(bytes(6))).rejects.toMatchObject({
      code: 'NO_PRIMARY',
      message:
        'group g: this replica was excluded from the primary partition (view 8) and cannot order any more (it rejoins only as a new incarnation); the command was not sent',
      notApplied: true,
    })
    batcher.delivered(ordered('a:1', 0)) // a late delivery settles nothing
    expect(sent).toHaveLength(1)
    batcher.close()
    await expect(batcher.submit(bytes(7))).rejects.toMatchObject({ code: 'CLOSED' })
  })

  it('NO_PRIMARY comes after the checks that do not depend on the partition', async () => {
    const { batcher } = setup()
    batcher.primary('minority', 1)
    await expect(batcher.submit('x' as never)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
    const stop = new TestError('WAVE_GAP', 'stopped')
    batcher.fail(stop)
    await expect(batcher.submit(bytes(1))).rejects.toBe(stop)
  })
})

describe('followPrimary', () => {
  it("hands its group's membership.primary to the batcher, and no other group's", () => {
    const events = new EventBus()
    const calls: [string, number][] = []
    followPrimary(
      { events, group: { port: 'g' } },
      { primary: (state, view) => void calls.push([state, view]) },
    )
    events.emit('membership.primary', { group: 'other', state: 'minority', view: 1 })
    events.emit('membership.primary', { group: 'g', state: 'minority', view: 2 })
    events.emit('membership.primary', { group: 'g', state: 'primary', view: 3 })
    expect(calls).toEqual([
      ['minority', 2],
      ['primary', 3],
    ])
  })
})

describe('Acknowledger', () => {
  function acknowledger(options: { flush?: () => boolean; owes?: () => boolean } = {}) {
    const clock = new ManualClock()
    const counters = new Counters()
    const acks: number[] = []
    let ack!: Acknowledger
    ack = new Acknowledger(
      { clock, counters },
      {
        ackDelayMs: 5,
        sendAck: () => {
          acks.push(clock.now())
          ack.sent()
        },
        ...options,
      },
    )
    return { clock, counters, acks, ack }
  }

  it('a send that throws (Psync not ready) is counted and tried again, with a growing delay', () => {
    const clock = new ManualClock()
    const counters = new Counters()
    let failing = 2
    const acks: number[] = []
    const ack: Acknowledger = new Acknowledger(
      { clock, counters },
      {
        ackDelayMs: 5,
        sendAck: () => {
          if (failing > 0) {
            failing--
            throw new Error('NOT_READY')
          }
          acks.push(clock.now())
          ack.sent()
        },
      },
    )
    ack.received()
    clock.advance(5) // fails
    clock.advance(10) // fails again (retried after 10)
    expect(counters.get('ackFailures')).toBe(2)
    expect(acks).toEqual([])
    clock.advance(20)
    expect(acks).toEqual([35])
    expect(counters.get('acks')).toBe(1)
    expect(clock.pending).toBe(0)
  })

  it('a flush whose send throws is no acknowledgement: the empty one is still sent (or retried)', () => {
    const clock = new ManualClock()
    const counters = new Counters()
    const acks: number[] = []
    let ack!: Acknowledger
    let notReady = true
    const batcher = new CommandBatcher(
      { clock, counters, events: new EventBus(), group: { port: 'g' } },
      {
        maxBatch: 8,
        maxBatchBytes: 64,
        error,
        send: () => {
          if (notReady) throw new Error('NOT_READY')
          ack.sent()
          return { id: 'a:1', seq: 1 }
        },
      },
    )
    ack = new Acknowledger(
      { clock, counters },
      {
        // 0: the acknowledgement timer fires before the batcher's own, with the command queued.
        ackDelayMs: 0,
        flush: () => batcher.flush(),
        sendAck: () => {
          if (notReady) throw new Error('NOT_READY')
          acks.push(clock.now())
          ack.sent()
        },
      },
    )
    ack.received()
    void batcher.submit(bytes(1)).catch(() => {})
    clock.advance(0) // the flush's send throws (the batch is rejected), then the empty ack's
    expect(ack.owed).toBe(true)
    expect(clock.pending).toBeGreaterThan(0)
    notReady = false
    clock.advance(10)
    expect(acks).toHaveLength(1)
    expect(ack.owed).toBe(false)
  })

  it('acknowledges a received command ackDelayMs later, once', () => {
    const { clock, counters, acks, ack } = acknowledger()
    ack.received()
    clock.advance(2)
    ack.received() // the timer is already running
    clock.advance(2.9)
    expect(acks).toEqual([])
    expect(ack.owed).toBe(true)
    clock.advance(0.1)
    expect(acks).toEqual([5])
    expect(counters.get('acks')).toBe(1)
    expect(ack.owed).toBe(false)
    clock.advance(100)
    expect(acks).toEqual([5])
  })

  it('sends nothing if something else went out meanwhile', () => {
    const { clock, counters, acks, ack } = acknowledger()
    ack.received()
    ack.sent()
    clock.advance(10)
    expect(acks).toEqual([])
    expect(counters.get('acks')).toBe(0)
    expect(clock.pending).toBe(0)
  })

  it('sends queued commands instead when there are any', () => {
    let queued = 2
    const { clock, counters, acks, ack } = acknowledger({
      flush: () => {
        if (queued === 0) return false
        queued = 0
        ack.sent()
        return true
      },
    })
    ack.received()
    clock.advance(5)
    expect(queued).toBe(0)
    expect(acks).toEqual([])
    expect(counters.get('acks')).toBe(0)
    ack.received()
    clock.advance(5)
    expect(acks).toEqual([10])
  })

  it('owe() marks without arming; schedule() arms when owed, also for owes()', () => {
    let blocked = false
    const { clock, acks, ack } = acknowledger({ owes: () => blocked })
    ack.schedule()
    expect(clock.pending).toBe(0)
    ack.owe()
    expect(clock.pending).toBe(0)
    ack.sent()
    blocked = true
    expect(ack.owed).toBe(true)
    ack.schedule()
    clock.advance(5)
    expect(acks).toEqual([5])
    blocked = false
    ack.owe()
    ack.schedule()
    clock.advance(5)
    expect(acks).toEqual([5, 10])
  })

  it('re-checks at fire time: owes() turning false cancels the acknowledgement', () => {
    let blocked = true
    const { clock, acks, ack } = acknowledger({ owes: () => blocked })
    ack.schedule()
    blocked = false
    clock.advance(5)
    expect(acks).toEqual([])
  })

  it('close() cancels the timer and keeps it off', () => {
    const { clock, acks, ack } = acknowledger()
    ack.received()
    ack.close()
    ack.received()
    clock.advance(10)
    expect(acks).toEqual([])
    expect(clock.pending).toBe(0)
    ack.close()
  })

  it('with a CommandBatcher: a batch acknowledges, so an ack follows only an idle turn', () => {
    const clock = new ManualClock()
    const counters = new Counters()
    const sent: string[] = []
    let seq = 0
    let ack!: Acknowledger
    const batcher = new CommandBatcher(
      { clock, counters, events: new EventBus(), group: { port: 'g' } },
      {
        maxBatch: 8,
        maxBatchBytes: 64,
        error,
        send: (batch) => {
          sent.push(`batch of ${batch.length}`)
          ack.sent()
          seq++
          return { id: `a:${seq}`, seq }
        },
      },
    )
    ack = new Acknowledger(
      { clock, counters },
      {
        ackDelayMs: 1,
        flush: () => batcher.flush(),
        sendAck: () => {
          sent.push('ack')
          ack.sent()
        },
      },
    )
    ack.received()
    void batcher.submit(bytes(1))
    clock.advance(0) // the batch goes out and answers the received command
    clock.advance(1)
    ack.received()
    clock.advance(1)
    expect(sent).toEqual(['batch of 1', 'ack'])
    expect(counters.snapshot()).toEqual({ acks: 1, batches: 1, submitted: 1 })
  })
})

describe('WaveSequence', () => {
  it('passes the expected wave, skips covered ones, and reports a gap without moving', () => {
    const waves = new WaveSequence()
    expect(waves.see(0)).toBe('next')
    expect(waves.see(1)).toBe('next')
    expect(waves.see(0)).toBe('covered')
    expect(waves.see(3)).toBe('gap')
    expect(waves.next).toBe(2)
    expect(waves.gapMessage('g', 3)).toMatch(
      /reported wave 3 but this Order expects wave 2 — waves 2\.\.2/,
    )
    waves.restoreTo(10)
    expect(waves.see(9)).toBe('covered')
    expect(waves.see(10)).toBe('next')
    waves.restoreTo(4) // never backwards
    expect(waves.next).toBe(11)
    expect(new WaveSequence(5).see(5)).toBe('next')
  })
})

describe('orderedCommand and recordOrderDelivery', () => {
  it('build the delivered record and count and trace it', async () => {
    const { orderedCommand, recordOrderDelivery } = await import('../src/order.js')
    const message = {
      id: 'a:3',
      sender: 'a',
      seq: 3,
      depth: 7,
      deps: [],
      payload: new Uint8Array(),
      restored: true,
    }
    const ordered = orderedCommand(message, 2, new Uint8Array([9]), { wave: 7, delivered: 12 })
    expect(ordered).toEqual({
      id: 'a:3/2',
      message: 'a:3',
      sender: 'a',
      command: new Uint8Array([9]),
      position: { wave: 7, delivered: 12 },
      restored: true,
    })
    const traced: unknown[] = []
    const counts: Record<string, number> = {}
    const ctx = {
      clock: new ManualClock(),
      counters: { inc: (name: string) => void (counts[name] = (counts[name] ?? 0) + 1) } as never,
      events: {
        has: () => true,
        emit: (_name: string, payload: unknown) => void traced.push(payload),
      } as never,
      group: { port: 'g' },
    }
    recordOrderDelivery(ctx, ordered, 7)
    expect(counts).toEqual({ delivered: 1 })
    expect(traced).toEqual([{ group: 'g', layer: 'order', id: 'a:3/2', from: 'a', depth: 7 }])
  })
})
