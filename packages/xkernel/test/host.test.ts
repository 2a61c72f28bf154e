import { describe, expect, it } from 'vitest'
import {
  type AnyProtocolFactory,
  capability,
  createLogger,
  defineProtocol,
  groupTag,
  hashString,
  type LogRecord,
  MemoryStorage,
  MessageBuffer,
  memorySink,
  type NodeId,
  Stack,
  seededRandom,
  stack,
  validateFactories,
  XKernelError,
  type XKernelErrorCode,
} from '../src/index.js'
import { type Delivery, flushMicrotasks, LoopbackNetwork, ManualClock } from './fakes.js'

declare module '../src/events.js' {
  interface ConsulEvents {
    'counter.changed': { readonly group: string; readonly value: number }
    'test.undeclared': { readonly n: number }
  }
}

// ---- protocols built for the tests -----------------------------------------------------------

/** Best-effort multicast to the group: the bottom of the test stack, it owns the network. */
interface FloodControl {
  broadcast(payload: Uint8Array): void
  send(to: NodeId, payload: Uint8Array): void
  onDeliver(handler: (from: NodeId, payload: Uint8Array) => void): void
}
interface CounterControl {
  increment(by: number): void
  readonly value: number
  readonly ticks: number
  /** Makes the current value durable. */
  save(): Promise<void>
}
interface AuditControl {
  readonly seen: readonly string[]
}

const FLOOD = capability<'flood', FloodControl>('flood')
const COUNTER = capability<'counter', CounterControl>('counter')
const AUDIT = capability<'audit', AuditControl>('audit')

const KIND_DATA = 1
const KIND_POISON = 0xee
const TICK_MS = 100

/** The lifecycle calls of every session, in order, across a test. */
type Trace = string[]

function floodProtocol(trace: Trace) {
  return defineProtocol({
    name: 'flood',
    provides: [FLOOD],
    create: (protocol) => ({
      open(ctx) {
        trace.push(`open flood ${ctx.group.port} ${protocol.self}`)
        const net = ctx.claimNetwork()
        const handlers: ((from: NodeId, payload: Uint8Array) => void)[] = []
        let seq = 0
        const frame = (payload: Uint8Array) =>
          MessageBuffer.fromPayload(payload).pushU8(KIND_DATA).pushUvarint(seq++)
        net.onReceive((from, message) => {
          message.popUvarint() // sequence number: a truncated one is a DecodeError
          if (message.popU8() === KIND_POISON) throw new Error('poisoned message')
          ctx.counters.inc('delivered')
          const payload = message.toBytes()
          for (const handler of handlers) handler(from, payload)
        })
        return {
          controls: {
            flood: {
              broadcast: (payload) => net.broadcast(frame(payload)),
              send: (to, payload) => net.send(to, frame(payload)),
              onDeliver: (handler) => void handlers.push(handler),
            },
          },
          start: () => void trace.push(`start flood ${ctx.group.port}`),
          close: () => void trace.push(`close flood ${ctx.group.port}`),
        }
      },
      stats: () => ({ protocolObjects: 1 }),
    }),
  })
}

const encodeValue = (value: number) => MessageBuffer.empty(0).pushVarint(value).toBytes()
const decodeValue = (bytes: Uint8Array) => MessageBuffer.wrap(bytes).popVarint()

/** A replicated counter over flood: persists its value and ticks on a timer. */
function counterProtocol(trace: Trace) {
  return defineProtocol({
    name: 'counter',
    requires: [FLOOD],
    provides: [COUNTER],
    raises: ['counter.changed'],
    create: () => ({
      open(ctx) {
        trace.push(`open counter ${ctx.group.port}`)
        const flood = ctx.get(FLOOD)
        const stored = ctx.storage.get('value')
        let value = ctx.group.restoring && stored !== undefined ? decodeValue(stored) : 0
        let ticks = 0
        const add = (by: number) => {
          value += by
          ctx.storage.put('value', encodeValue(value))
          ctx.events.emit('counter.changed', { group: ctx.group.port, value })
        }
        flood.onDeliver((_from, payload) => add(decodeValue(payload)))
        const tick = () => {
          ticks++
          ctx.clock.setTimer(TICK_MS, tick)
        }
        return {
          controls: {
            counter: {
              increment(by) {
                add(by)
                flood.broadcast(encodeValue(by))
              },
              get value() {
                return value
              },
              get ticks() {
                return ticks
              },
              save: () => ctx.storage.sync(),
            },
          },
          start() {
            trace.push(`start counter ${ctx.group.port}`)
            ctx.clock.setTimer(TICK_MS, tick)
          },
          close: () => void trace.push(`close counter ${ctx.group.port}`),
        }
      },
    }),
  })
}

/** Watches counter changes through the event bus only (an indirect dependency). */
function auditProtocol(trace: Trace) {
  return defineProtocol({
    name: 'audit',
    provides: [AUDIT],
    observes: ['counter.changed', 'group.opened'],
    create: () => ({
      open(ctx) {
        trace.push(`open audit ${ctx.group.port}`)
        const seen: string[] = []
        ctx.events.on('counter.changed', ({ group, value }) => seen.push(`${group}=${value}`))
        ctx.events.on('group.opened', ({ group }) => seen.push(`opened ${group}`))
        return {
          controls: { audit: { seen } },
          start: () => void trace.push(`start audit ${ctx.group.port}`),
          close: () => void trace.push(`close audit ${ctx.group.port}`),
        }
      },
    }),
  })
}

function testStack(trace: Trace = []) {
  return stack().use(floodProtocol(trace)).use(counterProtocol(trace)).use(auditProtocol(trace))
}

interface Node {
  readonly host: Awaited<ReturnType<ReturnType<typeof testStack>['start']>>
  readonly storage: MemoryStorage
  readonly logs: LogRecord[]
}

function world(delivery: Delivery = 'sync', universe: readonly NodeId[] = ['a', 'b', 'c']) {
  const network = new LoopbackNetwork(delivery, universe)
  const clock = new ManualClock()
  const trace: Trace = []
  const start = async (
    self: NodeId,
    options: { storage?: MemoryStorage; peers?: () => readonly NodeId[] } = {},
  ): Promise<Node> => {
    const storage = options.storage ?? new MemoryStorage({ name: `disk-${self}` })
    const sink = memorySink()
    const host = await testStack(trace).start({
      transport: network.transport(self, options.peers ? { peers: options.peers } : {}),
      clock,
      random: seededRandom(hashString(self)),
      storage,
      logger: createLogger({ level: 'debug', sink, now: () => clock.now() }),
    })
    return { host, storage, logs: sink.records }
  }
  return { network, clock, trace, start }
}

/** Bytes as the host puts them on the wire: the group tag, then the protocol's message. */
function datagram(
  port: string,
  body: readonly number[],
  members: readonly string[] = ['a', 'b'],
): Uint8Array {
  return MessageBuffer.fromPayload(Uint8Array.from(body)).pushU32(groupTag(port, members)).toBytes()
}

async function rejection(promise: Promise<unknown>): Promise<XKernelError> {
  try {
    await promise
  } catch (error) {
    expect(error).toBeInstanceOf(XKernelError)
    return error as XKernelError
  }
  throw new Error('expected a rejection')
}

function thrown(run: () => unknown): XKernelError {
  try {
    run()
  } catch (error) {
    expect(error).toBeInstanceOf(XKernelError)
    return error as XKernelError
  }
  throw new Error('expected a throw')
}

async function expectRejects(
  promise: Promise<unknown>,
  code: XKernelErrorCode,
  message?: RegExp,
): Promise<void> {
  const error = await rejection(promise)
  expect(error.code).toBe(code)
  if (message) expect(error.message).toMatch(message)
}

// ---- tests ------------------------------------------------------------------------------------

describe('starting and opening', () => {
  it('creates sessions bottom-up, starts them after all exist, and returns typed controls', async () => {
    const { start, trace } = world()
    const { host } = await start('a')
    expect(host.self).toBe('a')
    expect(host.state).toBe('running')
    const opened: unknown[] = []
    host.events.on('group.opened', (payload) => opened.push(payload))
    const group = await host.open({ port: 'g', members: ['a', 'b'], options: { answer: 42 } })
    expect(trace).toEqual([
      'open flood g a',
      'open counter g',
      'open audit g',
      'start flood g',
      'start counter g',
      'start audit g',
    ])
    expect(group.port).toBe('g')
    expect(group.members).toEqual(['a', 'b'])
    expect(group.restoring).toBe(false)
    expect(group.get(COUNTER).value).toBe(0)
    expect(typeof group.get(FLOOD).broadcast).toBe('function')
    // Sessions observing group.opened hear their own group's opening.
    expect(group.get(AUDIT).seen).toEqual(['opened g'])
    expect(opened).toEqual([{ group: 'g', members: ['a', 'b'] }])
    expect(host.group('g')).toBe(group)
    expect(host.groups()).toEqual([group])
    expect(host.group('other')).toBeUndefined()
  })

  it('gives sessions their group info, scoped storage and a forked random stream', async () => {
    let seen: { info: unknown; draw: number; keys: string[] } | undefined
    const probe = defineProtocol({
      name: 'probe',
      provides: [],
      create: () => ({
        open(ctx) {
          ctx.storage.put('k', Uint8Array.of(1))
          seen = {
            info: ctx.group,
            draw: ctx.random.uint32(),
            keys: [...ctx.storage.scan()].map((e) => e.key),
          }
          expect(Object.isFrozen(ctx.group)).toBe(true)
          return { controls: {} }
        },
      }),
    })
    const network = new LoopbackNetwork('sync', ['a', 'b', 'c'])
    const storage = new MemoryStorage()
    const host = await stack()
      .use(probe)
      .start({
        transport: network.transport('a'),
        clock: new ManualClock(),
        random: seededRandom(5),
        storage,
        logger: createLogger({ level: 'silent' }),
      })
    await host.open({ port: 'g', members: ['a'], options: { mode: 'fast' } })
    expect(seen).toEqual({
      info: {
        port: 'g',
        members: ['a'],
        self: 'a',
        options: { mode: 'fast' },
        restoring: false,
        configuration: 0,
        reconfigured: false,
      },
      draw: seededRandom(5).fork('probe/g').uint32(),
      keys: ['k'],
    })
    expect([...storage.scan()].map((e) => e.key)).toEqual(['probe/g/k', 'xkernel/group/g'])
  })

  it('rejects start() without a transport with INVALID_ARGUMENT', async () => {
    await expectRejects(testStack().start({} as never), 'INVALID_ARGUMENT', /transport/)
    await expectRejects(testStack().start(null as never), 'INVALID_ARGUMENT')
  })
})

describe('routing', () => {
  it.each(['sync', 'microtask'] as const)(
    'delivers to the group members (%s delivery) and keeps groups apart',
    async (delivery) => {
      const { start } = world(delivery)
      const [a, b, c] = await Promise.all([start('a'), start('b'), start('c')])
      const open = (node: Node, port: string, members: NodeId[]) =>
        node.host.open({ port, members })
      const [a1, b1, c1] = await Promise.all([
        open(a, 'g1', ['a', 'b', 'c']),
        open(b, 'g1', ['a', 'b', 'c']),
        open(c, 'g1', ['a', 'b', 'c']),
      ])
      const [a2, b2] = await Promise.all([open(a, 'g2', ['a', 'b']), open(b, 'g2', ['a', 'b'])])
      a1.get(COUNTER).increment(5)
      a2.get(COUNTER).increment(2)
      b2.get(COUNTER).increment(1)
      await flushMicrotasks()
      expect([a1, b1, c1].map((g) => g.get(COUNTER).value)).toEqual([5, 5, 5])
      expect([a2, b2].map((g) => g.get(COUNTER).value)).toEqual([3, 3])
      const seen = b1.get(AUDIT).seen
      // Interleaving depends on delivery; what b's audit saw last per group does not.
      expect(seen.slice(0, 2)).toEqual(['opened g1', 'opened g2'])
      expect(seen.filter((s) => s.startsWith('g1='))).toEqual(['g1=5'])
      expect(seen.filter((s) => s.startsWith('g2=')).at(-1)).toBe('g2=3')
      // c is not in g2: nothing was even sent to it.
      expect(c.host.stats().xkernel).not.toHaveProperty('droppedUnknownGroup')
      expect(c.host.stats().flood).toMatchObject({ delivered: 1 })
    },
  )

  it('counts and drops short, unknown-group, non-member and malformed datagrams', async () => {
    const { start, network } = world()
    const [a, b] = await Promise.all([start('a'), start('b')])
    network.transport('z') // a node outside the group
    const group = await a.host.open({ port: 'g', members: ['a', 'b'] })
    const inbound = () => a.host.stats().flood?.delivered ?? 0

    network.inject('b', 'a', Uint8Array.of(1, 2, 3))
    network.inject('b', 'a', new Uint8Array(0))
    network.inject('b', 'a', datagram('not-open-here', [0, KIND_DATA, 7]))
    network.inject('z', 'a', datagram('g', [0, KIND_DATA, 7]))
    network.inject('b', 'a', datagram('g', [0x80])) // truncated varint: DecodeError
    network.inject('b', 'a', datagram('g', [0])) // missing kind byte: DecodeError
    network.inject('b', 'a', datagram('g', [0, KIND_POISON])) // handler bug: not a DecodeError

    expect(a.host.stats().xkernel).toMatchObject({
      droppedShort: 2,
      droppedUnknownGroup: 1,
      droppedNonMember: 1,
      droppedMalformed: 2,
      receiveHandlerErrors: 1,
    })
    expect(inbound()).toBe(0)
    expect(group.get(COUNTER).value).toBe(0)
    expect(group.get(AUDIT).seen).toEqual(['opened g'])
    const errors = a.logs.filter((r) => r.level === 'error')
    expect(errors).toHaveLength(1)
    expect(errors[0]).toMatchObject({ msg: 'receive handler threw', host: 'a' })
    expect(a.logs.filter((r) => r.msg === 'malformed message')).toHaveLength(2)

    // A well-formed datagram from a member still gets through.
    network.inject('b', 'a', datagram('g', [0, KIND_DATA, ...encodeValue(4)]))
    expect(inbound()).toBe(1)
    expect(group.get(COUNTER).value).toBe(4)
    expect(b.host.stats().xkernel).not.toHaveProperty('droppedShort')
  })

  it('member lists are sets: any order gives the same canonical list; a different set cannot talk', async () => {
    const { start } = world()
    const [a, b, c] = await Promise.all([start('a'), start('b'), start('c')])
    const ga = await a.host.open({ port: 'g', members: ['c', 'a', 'b'] })
    const gb = await b.host.open({ port: 'g', members: ['b', 'c', 'a'] })
    // c believes the group is only a and c: its datagrams carry another tag.
    const gc = await c.host.open({ port: 'g', members: ['c', 'a'] })
    expect(ga.members).toEqual(['a', 'b', 'c'])
    expect(gb.members).toEqual(['a', 'b', 'c'])
    expect(a.host.storedGroups()).toEqual([{ port: 'g', members: ['a', 'b', 'c'] }])
    expect(groupTag('g', ['c', 'a', 'b'])).toBe(groupTag('g', ['a', 'b', 'c']))
    expect(groupTag('g', ['a', 'c'])).not.toBe(groupTag('g', ['a', 'b', 'c']))
    ga.get(COUNTER).increment(5)
    gc.get(COUNTER).increment(7)
    await flushMicrotasks()
    expect(gb.get(COUNTER).value).toBe(5)
    expect(ga.get(COUNTER).value).toBe(5)
    expect(gc.get(COUNTER).value).toBe(7)
    expect(a.host.stats().xkernel).toMatchObject({ droppedUnknownGroup: 1 })
  })

  it('skips a group record that fails its checksum (torn by a crash) instead of failing recovery', async () => {
    const { start } = world()
    const storage = new MemoryStorage({ name: 'disk-a' })
    const a = await start('a', { storage })
    await a.host.open({ port: 'kept', members: ['a', 'b'] })
    await storage.sync()
    await a.host.open({ port: 'torn', members: ['a', 'b'] })
    // The crash tears the record written last (the unsynced one).
    a.host.crash()
    storage.crash({ corrupt: { probability: 1, random: seededRandom(1) } })
    const again = await start('a', { storage })
    expect(again.host.storedGroups()).toEqual([{ port: 'kept', members: ['a', 'b'] }])
    expect((await again.host.recoverGroups()).map((g) => g.port)).toEqual(['kept'])
    expect(again.host.stats().xkernel).toMatchObject({ unreadableGroupRecords: 2 })
    expect(again.logs.some((r) => r.msg === 'corrupted group record in storage skipped')).toBe(true)
  })

  it('counts datagrams for a group where no protocol claimed the network', async () => {
    const idle = defineProtocol({
      name: 'idle',
      create: () => ({ open: () => ({ controls: {} }) }),
    })
    const network = new LoopbackNetwork('sync', ['a', 'b', 'c'])
    const host = await stack()
      .use(idle)
      .start({ transport: network.transport('a'), clock: new ManualClock() })
    await host.open({ port: 'g', members: ['a', 'b'] })
    network.inject('b', 'a', datagram('g', [1, 2]))
    expect(host.stats().xkernel).toMatchObject({ droppedNoReceiver: 1 })
  })

  it('sends to one member, and refuses a non-member or self with INVALID_ARGUMENT', async () => {
    const { start } = world()
    const [a, b, c] = await Promise.all([start('a'), start('b'), start('c')])
    const members = ['a', 'b', 'c']
    const [ga, gb, gc] = await Promise.all(
      [a, b, c].map((n) => n.host.open({ port: 'g', members })),
    )
    ga!.get(FLOOD).send('c', encodeValue(9))
    expect(gb!.get(COUNTER).value).toBe(0)
    expect(gc!.get(COUNTER).value).toBe(9)
    const flood = ga!.get(FLOOD)
    expect(thrown(() => flood.send('z', encodeValue(1))).code).toBe('INVALID_ARGUMENT')
    expect(thrown(() => flood.send('a', encodeValue(1))).code).toBe('INVALID_ARGUMENT')
  })

  it('broadcasts with one transport broadcast only when the group is exactly the peers', async () => {
    const { start, network } = world()
    const nodes = await Promise.all(['a', 'b', 'c'].map((id) => start(id)))
    const a = nodes[0]!
    const all = await a.host.open({ port: 'all', members: ['a', 'b', 'c'] })
    const pair = await a.host.open({ port: 'pair', members: ['a', 'b'] })
    const counts = () => a.host.stats().transport!
    all.get(COUNTER).increment(1)
    expect(counts()).toMatchObject({ broadcasts: 1, sent: 2 })
    pair.get(COUNTER).increment(1)
    expect(counts()).toMatchObject({ broadcasts: 1, sent: 3 })
    expect(network.members).toEqual(['a', 'b', 'c'])
  })

  it('refuses a group member the transport cannot reach, and sends only to the group', async () => {
    const { start } = world('sync', ['a', 'b', 'c', 'x'])
    // a's transport lists peers b and c only.
    const a = await start('a', { peers: () => ['b', 'c'] })
    const [b, c] = await Promise.all([start('b'), start('c')])
    await expect(a.host.open({ port: 'g', members: ['a', 'b', 'x'] })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringContaining('member x is not a peer'),
    })
    expect(a.host.group('g')).toBeUndefined()
    const members = ['a', 'b']
    const ga = await a.host.open({ port: 'g', members })
    const gb = await b.host.open({ port: 'g', members })
    // c has its own group on the same port, which a is a member of.
    const gc = await c.host.open({ port: 'g', members: ['a', 'b', 'c'] })
    ga.get(COUNTER).increment(3)
    expect([gb, gc].map((g) => g.get(COUNTER).value)).toEqual([3, 0])
  })
})

describe('composition checks at start (JavaScript callers)', () => {
  it('refuses a stack missing a requirement with MISSING_CAPABILITY naming it', async () => {
    const counter = counterProtocol([])
    const error = await rejection(new Stack([counter]).start({} as never))
    expect(error.code).toBe('MISSING_CAPABILITY')
    expect(error.message).toContain("requires capability 'flood'")
    expect(error.message).toContain('counter')
    // The same through use(), with the type check bypassed the way plain JS would.
    const untyped = stack().use(counter as never)
    expect(thrown(() => untyped.validate()).code).toBe('MISSING_CAPABILITY')
    // Order matters: the provider must come first.
    const reversed = [counter, floodProtocol([])] as AnyProtocolFactory[]
    expect(thrown(() => validateFactories(reversed)).code).toBe('MISSING_CAPABILITY')
  })

  it('refuses two providers of one capability with DUPLICATE_CAPABILITY', async () => {
    const other = defineProtocol({
      name: 'other-flood',
      provides: [FLOOD],
      create: () => ({ open: () => ({ controls: { flood: {} as FloodControl } }) }),
    })
    const error = await rejection(new Stack([floodProtocol([]), other]).start({} as never))
    expect(error.code).toBe('DUPLICATE_CAPABILITY')
    expect(error.message).toBe(
      "protocols flood and other-flood both provide capability 'flood': keep one",
    )
  })

  it('refuses the same protocol twice, and things that are not factories', () => {
    const flood = floodProtocol([])
    const twice = thrown(() => new Stack([flood, floodProtocol([])]).validate())
    expect(twice.code).toBe('INVALID_ARGUMENT')
    expect(twice.message).toContain('flood')
    for (const bad of [null, 42, { name: 'x' }, { name: 'x', create() {}, provides: [] }]) {
      const error = thrown(() => new Stack([bad as never]).validate())
      expect(error.code).toBe('INVALID_ARGUMENT')
    }
  })

  it('defineProtocol rejects a nameless or create-less definition with TypeError', () => {
    expect(() =>
      defineProtocol({ name: '', create: () => ({ open: () => ({ controls: {} }) }) }),
    ).toThrow(TypeError)
    expect(() => defineProtocol({ name: 'x' } as never)).toThrow(TypeError)
    expect(() => capability('')).toThrow(TypeError)
  })

  it('is immutable: use() returns a new stack', () => {
    const base = stack()
    const withFlood = base.use(floodProtocol([]))
    expect(base.factories).toHaveLength(0)
    expect(withFlood.factories.map((f) => f.name)).toEqual(['flood'])
  })
})

describe('session contract', () => {
  function lone(definition: Parameters<typeof defineProtocol>[0]) {
    const network = new LoopbackNetwork('sync', ['a', 'b', 'c'])
    const clock = new ManualClock()
    const logger = createLogger({ level: 'silent' })
    return {
      clock,
      start: (below: AnyProtocolFactory[] = []) =>
        new Stack([...below, defineProtocol(definition) as AnyProtocolFactory]).start({
          transport: network.transport('a'),
          clock,
          logger,
        }),
    }
  }

  it('refuses to emit an undeclared event, and rolls the group back', async () => {
    const { start, clock } = lone({
      name: 'chatty',
      create: () => ({
        open(ctx) {
          ctx.events.emit('test.undeclared', { n: 1 })
          return { controls: {} }
        },
      }),
    })
    // A protocol below sets a timer while opening; the failed open must silence it.
    const trace: Trace = []
    const host = await start([floodProtocol(trace), counterProtocol(trace)])
    await expectRejects(
      host.open({ port: 'g', members: ['a'] }),
      'INVALID_ARGUMENT',
      /chatty raises 'test.undeclared' without declaring it in raises/,
    )
    expect(host.group('g')).toBeUndefined()
    expect(host.storedGroups()).toEqual([])
    expect(host.stats().xkernel).toMatchObject({ openGroups: 0, pendingTimers: 0 })
    clock.advance(10 * TICK_MS)
    expect(trace).toEqual(['open flood g a', 'open counter g'])
  })

  it('refuses to observe an undeclared event, and silences the failed session', async () => {
    const calls: string[] = []
    const { start, clock } = lone({
      name: 'nosy',
      observes: ['group.opened'],
      create: () => ({
        open(ctx) {
          ctx.clock.setTimer(10, () => calls.push('timer'))
          ctx.events.on('group.opened', () => calls.push('handler'))
          ctx.events.on('counter.changed', () => {})
          return { controls: {} }
        },
      }),
    })
    const host = await start()
    await expectRejects(
      host.open({ port: 'g', members: ['a'] }),
      'INVALID_ARGUMENT',
      /nosy observes 'counter.changed' without declaring it in observes/,
    )
    // What the session set up before failing is gone with it.
    expect(host.events.has('group.opened')).toBe(false)
    expect(host.stats().xkernel).toMatchObject({ pendingTimers: 0 })
    clock.advance(100)
    host.events.emit('group.opened', { group: 'other', members: ['a'] })
    expect(calls).toEqual([])
  })

  it('refuses a lookup of a capability the protocol did not require', async () => {
    const { start } = lone({
      name: 'sneaky',
      create: () => ({
        open(ctx) {
          ;(ctx.get as (cap: unknown) => unknown)(FLOOD)
          return { controls: {} }
        },
      }),
    })
    const host = await start([floodProtocol([])])
    await expectRejects(
      host.open({ port: 'g', members: ['a'] }),
      'UNKNOWN_CAPABILITY',
      /sneaky looks up 'flood' without declaring it in requires/,
    )
  })

  it('refuses a session that lacks a control it declares', async () => {
    const { start } = lone({
      name: 'liar',
      provides: [AUDIT],
      create: () => ({ open: () => ({ controls: {} as { audit: AuditControl } }) }),
    })
    const host = await start()
    await expectRejects(
      host.open({ port: 'g', members: ['a'] }),
      'MISSING_CAPABILITY',
      /liar declares capability 'audit'/,
    )
  })

  it('refuses an open() that does not return { controls }', async () => {
    const { start } = lone({ name: 'broken', create: () => ({ open: () => null as never }) })
    const host = await start()
    await expectRejects(host.open({ port: 'g', members: ['a'] }), 'INVALID_ARGUMENT')
  })

  it('refuses a second network claim in a group with NETWORK_CLAIMED', async () => {
    const { start } = lone({
      name: 'grabby',
      create: () => ({
        open(ctx) {
          ctx.claimNetwork()
          return { controls: {} }
        },
      }),
    })
    const host = await start([floodProtocol([])])
    await expectRejects(
      host.open({ port: 'g', members: ['a'] }),
      'NETWORK_CLAIMED',
      /grabby claims the network of group g, which flood already holds/,
    )
    // Claims are per group: another group is unaffected (and fails the same way).
    await expectRejects(host.open({ port: 'h', members: ['a'] }), 'NETWORK_CLAIMED')
  })

  it('group.get of a capability nobody provides throws UNKNOWN_CAPABILITY', async () => {
    const { start } = world()
    const { host } = await start('a')
    const group = await host.open({ port: 'g', members: ['a'] })
    const stranger = capability<'stranger', unknown>('stranger')
    const error = thrown(() => (group.get as (cap: unknown) => unknown)(stranger))
    expect(error.code).toBe('UNKNOWN_CAPABILITY')
    expect(error.message).toContain("'stranger'")
  })

  it('counts and logs an event handler that throws, without stopping the emitter', async () => {
    const { start } = world()
    const a = await start('a')
    a.host.events.on('counter.changed', () => {
      throw new Error('app bug')
    })
    const group = await a.host.open({ port: 'g', members: ['a'] })
    group.get(COUNTER).increment(1)
    group.get(COUNTER).increment(1)
    expect(group.get(COUNTER).value).toBe(2)
    expect(group.get(AUDIT).seen).toEqual(['opened g', 'g=1', 'g=2'])
    expect(a.host.stats().xkernel?.eventHandlerErrors).toBe(2)
    expect(a.logs.filter((r) => r.msg === 'event handler threw')).toHaveLength(2)
  })
})

describe('describe() and stats()', () => {
  it('describes protocols, groups, sessions, edges and event edges as plain data', async () => {
    const { start } = world()
    const { host } = await start('a')
    await host.open({ port: 'g', members: ['a', 'b'] })
    const description = host.describe()
    expect(JSON.parse(JSON.stringify(description))).toEqual(description)
    expect(description).toEqual({
      self: 'a',
      state: 'running',
      protocols: [
        { name: 'flood', requires: [], provides: ['flood'], raises: [], observes: [] },
        {
          name: 'counter',
          requires: ['flood'],
          provides: ['counter'],
          raises: ['counter.changed'],
          observes: [],
        },
        {
          name: 'audit',
          requires: [],
          provides: ['audit'],
          raises: [],
          observes: ['counter.changed', 'group.opened'],
        },
      ],
      groups: [{ port: 'g', members: ['a', 'b'], configuration: 0 }],
      sessions: [
        { group: 'g', protocol: 'flood', checkpoint: false, restored: false },
        { group: 'g', protocol: 'counter', checkpoint: false, restored: false },
        { group: 'g', protocol: 'audit', checkpoint: false, restored: false },
      ],
      edges: [{ from: 'counter', to: 'flood', capability: 'flood' }],
      eventEdges: [{ event: 'counter.changed', from: 'counter', to: 'audit' }],
    })
  })

  it('reports framework, transport and per-protocol counters', async () => {
    const { start } = world('sync', ['a', 'b'])
    const [a, b] = await Promise.all([start('a'), start('b')])
    const [ga] = await Promise.all([
      a.host.open({ port: 'g', members: ['a', 'b'] }),
      b.host.open({ port: 'g', members: ['a', 'b'] }),
    ])
    ga!.get(COUNTER).increment(1)
    expect(a.host.stats()).toEqual({
      xkernel: { eventHandlerErrors: 0, openGroups: 1, pendingTimers: 1 },
      transport: { sent: 1, broadcasts: 1, received: 0 },
      flood: { protocolObjects: 1 },
      counter: {},
      audit: {},
    })
    expect(b.host.stats()).toMatchObject({
      transport: { sent: 0, broadcasts: 0, received: 1 },
      flood: { delivered: 1, protocolObjects: 1 },
    })
  })
})

describe('crash and recovery', () => {
  it('crash() silences timers and receive; a new host recovers what was synced', async () => {
    const { start, clock, network } = world()
    const [a, b] = await Promise.all([start('a'), start('b')])
    const members = ['a', 'b']
    const [ga, gb] = await Promise.all([
      a.host.open({ port: 'g', members }),
      b.host.open({ port: 'g', members }),
    ])
    const counterA = ga!.get(COUNTER)
    counterA.increment(3)
    await counterA.save()
    counterA.increment(4) // written, not synced
    clock.advance(TICK_MS)
    expect(counterA.ticks).toBe(1)
    expect(gb!.get(COUNTER).value).toBe(7)

    a.host.crash()
    expect(a.host.state).toBe('crashed')
    expect(a.host.describe()).toMatchObject({ state: 'crashed', groups: [], sessions: [] })
    clock.advance(5 * TICK_MS)
    expect(counterA.ticks).toBe(1)
    gb!.get(COUNTER).increment(10)
    expect(counterA.value).toBe(7)
    expect(a.host.stats().xkernel).not.toHaveProperty('droppedUnknownGroup')
    // Controls the application still holds go nowhere.
    counterA.increment(100)
    expect(gb!.get(COUNTER).value).toBe(17)
    expect(a.host.stats().xkernel).toMatchObject({ sendsAfterClose: 1, openGroups: 0 })
    expect(thrown(() => ga!.get(COUNTER)).code).toBe('GROUP_CLOSED')
    await expectRejects(a.host.open({ port: 'h', members: ['a'] }), 'HOST_CRASHED')
    await expectRejects(a.host.recoverGroups(), 'HOST_CRASHED')
    a.host.crash() // idempotent
    await a.host.stop() // a crashed host cannot be stopped: no-op

    // The process is gone; its disk loses what was not synced.
    a.storage.crash()
    const restarted = await start('a', { storage: a.storage })
    expect(restarted.host.storedGroups()).toEqual([{ port: 'g', members }])
    const recovered = await restarted.host.recoverGroups((port) => ({ port, resumed: true }))
    expect(recovered).toHaveLength(1)
    const group = recovered[0]!
    expect(group.restoring).toBe(true)
    expect(group.get(COUNTER).value).toBe(3)
    // Recovering again skips groups already open.
    expect(await restarted.host.recoverGroups()).toEqual([])
    // And it is live again.
    gb!.get(COUNTER).increment(1)
    expect(group.get(COUNTER).value).toBe(4)
    clock.advance(TICK_MS)
    expect(group.get(COUNTER).ticks).toBe(1)
    expect(network.members).toEqual(['a', 'b'])
  })

  it('passes per-group options to recovered sessions (they are not stored)', async () => {
    let options: unknown
    const probe = defineProtocol({
      name: 'probe',
      create: () => ({
        open(ctx) {
          options = ctx.group.options
          return { controls: {} }
        },
      }),
    })
    const network = new LoopbackNetwork('sync', ['a', 'b', 'c'])
    const storage = new MemoryStorage()
    const boot = () =>
      stack()
        .use(probe)
        .start({ transport: network.transport('a'), storage, clock: new ManualClock() })
    const first = await boot()
    await first.open({ port: 'g', members: ['a'], options: { fn: 'not stored' } })
    await storage.sync()
    first.crash()
    const second = await boot()
    await second.recoverGroups()
    expect(options).toEqual({})
    const third = await boot()
    second.crash()
    await third.recoverGroups((port) => (port === 'g' ? { mode: 'x' } : undefined))
    expect(options).toEqual({ mode: 'x' })
  })

  it('keeps the group record when recovery fails, so a later restart can retry', async () => {
    const STATE = capability<'state', { write(value: number): void }>('state')
    const stateful = defineProtocol({
      name: 'stateful',
      provides: [STATE],
      create: () => ({
        open(ctx) {
          ctx.storage.get('state') // a damaged record throws StorageCorruptedError
          return {
            controls: { state: { write: (value) => ctx.storage.put('state', encodeValue(value)) } },
          }
        },
      }),
    })
    const network = new LoopbackNetwork('sync', ['a', 'b', 'c'])
    const storage = new MemoryStorage({ name: 'disk-a' })
    const boot = () =>
      stack()
        .use(stateful)
        .start({ transport: network.transport('a'), storage, clock: new ManualClock() })
    const first = await boot()
    const group = await first.open({ port: 'g', members: ['a'] })
    await storage.sync()
    group.get(STATE).write(1) // the last, unsynced batch: torn by the crash below
    first.crash()
    storage.crash({ corrupt: { probability: 1, random: seededRandom(1) } })

    const second = await boot()
    await expect(second.recoverGroups()).rejects.toMatchObject({
      code: 'RECOVERY_FAILED',
      cause: { name: 'StorageCorruptedError', key: 'stateful/g/state' },
    })
    expect(second.group('g')).toBeUndefined()
    expect(second.storedGroups()).toEqual([{ port: 'g', members: ['a'] }])
    // After repair (here: dropping the damaged record) recovery succeeds.
    storage.delete('stateful/g/state')
    expect((await second.recoverGroups()).map((g) => g.port)).toEqual(['g'])
  })

  it('counts and skips unreadable group records', async () => {
    const storage = new MemoryStorage()
    storage.put('xkernel/group/bad', new TextEncoder().encode('{not json'))
    storage.put('xkernel/group/wrong', new TextEncoder().encode('{"port":1}'))
    const { start } = world()
    const a = await start('a', { storage })
    expect(a.host.storedGroups()).toEqual([])
    expect(a.host.stats().xkernel).toMatchObject({ unreadableGroupRecords: 2 })
    expect(a.logs.filter((r) => r.msg === 'unreadable group record in storage')).toHaveLength(2)
  })
})

describe('closing and stopping', () => {
  it('group.close() closes sessions top-first and forgets the group', async () => {
    const { start, trace, clock } = world()
    const a = await start('a')
    const closed: unknown[] = []
    a.host.events.on('group.closed', (payload) => closed.push(payload))
    const group = await a.host.open({ port: 'g', members: ['a'] })
    const counter = group.get(COUNTER)
    trace.length = 0
    await group.close()
    expect(trace).toEqual(['close audit g', 'close counter g', 'close flood g'])
    expect(closed).toEqual([{ group: 'g' }])
    expect(a.host.group('g')).toBeUndefined()
    expect(a.host.groups()).toEqual([])
    expect(a.host.storedGroups()).toEqual([])
    expect(thrown(() => group.get(COUNTER)).code).toBe('GROUP_CLOSED')
    clock.advance(5 * TICK_MS)
    expect(counter.ticks).toBe(0)
    await group.close() // idempotent
    expect(closed).toHaveLength(1)
    // The port can be opened again.
    const again = await a.host.open({ port: 'g', members: ['a'] })
    expect(again.get(COUNTER).value).toBe(0)
  })

  it('a close handler that throws is logged and the others still run', async () => {
    const trace: Trace = []
    const fragile = defineProtocol({
      name: 'fragile',
      create: () => ({
        open: () => ({
          controls: {},
          close() {
            throw new Error('close failed')
          },
        }),
      }),
    })
    const sink = memorySink()
    const network = new LoopbackNetwork('sync', ['a', 'b', 'c'])
    const host = await stack()
      .use(floodProtocol(trace))
      .use(fragile)
      .start({
        transport: network.transport('a'),
        clock: new ManualClock(),
        logger: createLogger({ sink }),
      })
    const group = await host.open({ port: 'g', members: ['a'] })
    await group.close()
    expect(trace).toContain('close flood g')
    expect(sink.records).toMatchObject([{ level: 'error', msg: 'session close threw' }])
  })

  it('stop() closes sessions, keeps the group records, and closes transport and storage', async () => {
    const { start, trace, network } = world()
    const a = await start('a')
    await a.host.open({ port: 'g', members: ['a'] })
    await a.host.open({ port: 'h', members: ['a', 'b'] })
    trace.length = 0
    await a.host.stop()
    expect(trace).toEqual([
      'close audit g',
      'close counter g',
      'close flood g',
      'close audit h',
      'close counter h',
      'close flood h',
    ])
    expect(a.host.state).toBe('stopped')
    expect(() => a.storage.get('x')).toThrow(/closed/)
    await expectRejects(a.host.open({ port: 'k', members: ['a'] }), 'HOST_STOPPED')
    await a.host.stop() // idempotent
    expect(network.members).toContain('a')
    // The records were synced before the store closed: they survive a crash of the disk.
    a.storage.reopen().crash()
    const restarted = await start('a', { storage: a.storage })
    expect(restarted.host.storedGroups().map((g) => g.port)).toEqual(['g', 'h'])
  })
})

describe('open() arguments', () => {
  it('rejects bad specs with INVALID_ARGUMENT and writes nothing', async () => {
    const { start } = world()
    const a = await start('a')
    const bad: [unknown, RegExp][] = [
      [null, /takes \{ port, members/],
      [{ port: '', members: ['a'] }, /port must be 1 to 100 characters/],
      [{ port: 'x'.repeat(101), members: ['a'] }, /port must be 1 to 100 characters/],
      [{ port: 7, members: ['a'] }, /port must be 1 to 100 characters/],
      [{ port: 'a/b', members: ['a'] }, /port must be 1 to 100 characters/],
      [{ port: 'g', members: ['a', 'zz'] }, /member zz is not a peer/],
      [{ port: 'g', members: [] }, /members must be a non-empty array/],
      [{ port: 'g', members: 'a' }, /members must be a non-empty array/],
      [{ port: 'g', members: ['b', 'c'] }, /members must include this host \(a\)/],
      [{ port: 'g', members: ['a', 'b', 'a'] }, /member a is listed twice/],
      [{ port: 'g', members: ['a', ''] }, /member ids must be non-empty strings/],
      [{ port: 'g', members: ['a', 3] }, /member ids must be non-empty strings/],
      [{ port: 'g', members: ['a'], options: null }, /options must be an object/],
      [{ port: 'g', members: ['a'], options: 'fast' }, /options must be an object/],
    ]
    for (const [spec, message] of bad) {
      await expectRejects(a.host.open(spec as never), 'INVALID_ARGUMENT', message)
    }
    expect(a.host.groups()).toEqual([])
    expect(a.storage.size).toBe(0)
    await a.host.open({ port: 'x'.repeat(100), members: ['a'] })
  })

  it('rejects a port already open, or one whose wire tag clashes, with GROUP_EXISTS', async () => {
    const { start } = world()
    const a = await start('a')
    await a.host.open({ port: 'g', members: ['a'] })
    await expectRejects(a.host.open({ port: 'g', members: ['a'] }), 'GROUP_EXISTS', /already open/)
    // Two ports with the same 32-bit FNV-1a hash, found offline.
    expect(hashString('port-916955')).toBe(hashString('port-1110110'))
    await a.host.open({ port: 'port-916955', members: ['a'] })
    await expectRejects(
      a.host.open({ port: 'port-1110110', members: ['a'] }),
      'GROUP_EXISTS',
      /port-916955 and port-1110110 hash to the same wire tag/,
    )
    expect(a.host.groups().map((g) => g.port)).toEqual(['g', 'port-916955'])
    expect(a.host.storedGroups().map((g) => g.port)).toEqual(['g', 'port-916955'])
  })
})
