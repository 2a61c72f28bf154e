/**
 * Type-level tests of composition: a stack whose protocols do not fit together must not
 * compile, and what does compile must hand out exactly typed controls. Run by vitest's
 * typecheck mode (and by `tsc --noEmit`); every `@ts-expect-error` must meet an error.
 */
import { describe, expectTypeOf, it } from 'vitest'
import {
  type CapabilitiesOf,
  type CompositionCheck,
  type ControlOf,
  capability,
  defineProtocol,
  type Group,
  type Host,
  type NoCapabilities,
  type ProtocolFactory,
  type Stack,
  stack,
  type Transport,
} from '../src/index.js'

interface FloodControl {
  broadcast(payload: Uint8Array): void
}
/** A richer flood: every FloodControl use still works with it. */
interface ReliableFloodControl extends FloodControl {
  readonly retransmissions: number
}
interface CounterControl {
  increment(by: number): void
  readonly value: number
}
interface AuditControl {
  readonly seen: readonly string[]
}

const FLOOD = capability<'flood', FloodControl>('flood')
const RELIABLE_FLOOD = capability<'flood', ReliableFloodControl>('flood')
/** Same name as FLOOD, unrelated control type. */
const NUMERIC_FLOOD = capability<'flood', { broadcast(n: number): void }>('flood')
const COUNTER = capability<'counter', CounterControl>('counter')
const AUDIT = capability<'audit', AuditControl>('audit')

const floodControl: FloodControl = { broadcast: () => {} }

const flood = defineProtocol({
  name: 'flood',
  provides: [FLOOD],
  create: () => ({ open: () => ({ controls: { flood: floodControl } }) }),
})
const reliableFlood = defineProtocol({
  name: 'reliable-flood',
  provides: [RELIABLE_FLOOD],
  create: () => ({
    open: () => ({ controls: { flood: { ...floodControl, retransmissions: 0 } } }),
  }),
})
const otherFlood = defineProtocol({
  name: 'other-flood',
  provides: [FLOOD],
  create: () => ({ open: () => ({ controls: { flood: floodControl } }) }),
})
const counter = defineProtocol({
  name: 'counter',
  requires: [FLOOD],
  provides: [COUNTER],
  create: () => ({
    open(ctx) {
      const net = ctx.get(FLOOD)
      let value = 0
      return {
        controls: {
          counter: {
            increment(by) {
              value += by
              net.broadcast(new Uint8Array([by]))
            },
            get value() {
              return value
            },
          },
        },
      }
    },
  }),
})
const audit = defineProtocol({
  name: 'audit',
  requires: [FLOOD, COUNTER],
  provides: [AUDIT],
  create: () => ({ open: () => ({ controls: { audit: { seen: [] } } }) }),
})
const numericUser = defineProtocol({
  name: 'numeric-user',
  requires: [NUMERIC_FLOOD],
  create: () => ({ open: () => ({ controls: {} }) }),
})
const reliableUser = defineProtocol({
  name: 'reliable-user',
  requires: [RELIABLE_FLOOD],
  create: () => ({ open: () => ({ controls: {} }) }),
})

declare const transport: Transport

describe('capabilities', () => {
  it('carry their name and control type', () => {
    expectTypeOf(FLOOD.name).toEqualTypeOf<'flood'>()
    expectTypeOf<ControlOf<typeof FLOOD>>().toEqualTypeOf<FloodControl>()
    expectTypeOf<CapabilitiesOf<[typeof FLOOD, typeof COUNTER]>>().toEqualTypeOf<{
      flood: FloodControl
      counter: CounterControl
    }>()
  })

  it('type a protocol factory from its lists', () => {
    expectTypeOf(counter).toEqualTypeOf<
      ProtocolFactory<
        CapabilitiesOf<readonly [typeof FLOOD]>,
        CapabilitiesOf<readonly [typeof COUNTER]>
      >
    >()
  })
})

describe('stack().use() accepts well-formed stacks', () => {
  it('in dependency order', () => {
    const s = stack().use(flood).use(counter).use(audit)
    expectTypeOf(s).toEqualTypeOf<
      Stack<
        NoCapabilities & { flood: FloodControl } & { counter: CounterControl } & {
          audit: AuditControl
        }
      >
    >()
  })

  it('with a provider whose control is a subtype of the required one', () => {
    stack().use(reliableFlood).use(counter)
    stack().use(reliableFlood).use(reliableUser)
  })

  it('with protocols that require nothing, in any order', () => {
    stack().use(flood)
    stack().use(
      defineProtocol({ name: 'idle', create: () => ({ open: () => ({ controls: {} }) }) }),
    )
  })
})

describe('stack().use() rejects ill-formed stacks', () => {
  it('a missing capability', () => {
    // @ts-expect-error counter requires 'flood', which nothing provides
    stack().use(counter)
    // @ts-expect-error the provider comes too late
    stack().use(counter).use(flood)
    // @ts-expect-error audit requires 'counter' as well as 'flood'
    stack().use(flood).use(audit)
  })

  it('a capability provided twice', () => {
    // @ts-expect-error two protocols provide 'flood'
    stack().use(flood).use(otherFlood)
    // @ts-expect-error the same protocol twice provides 'flood' twice
    stack().use(flood).use(flood)
  })

  it('a capability provided with an incompatible control type', () => {
    // @ts-expect-error numeric-user wants broadcast(n: number)
    stack().use(flood).use(numericUser)
    // @ts-expect-error reliable-user needs retransmissions, plain flood lacks it
    stack().use(flood).use(reliableUser)
  })

  it('with a type whose text names the fault and the capability', () => {
    type Missing = CompositionCheck<{ flood: FloodControl }, NoCapabilities, NoCapabilities>
    expectTypeOf<Missing>().toEqualTypeOf<{
      readonly 'error: missing capability, add a protocol that provides it earlier in the stack': 'flood'
    }>()
    type Duplicate = CompositionCheck<
      NoCapabilities,
      { flood: FloodControl },
      { flood: FloodControl }
    >
    expectTypeOf<Duplicate>().toEqualTypeOf<{
      readonly 'error: capability already provided by an earlier protocol': 'flood'
    }>()
    type Mismatch = CompositionCheck<
      { flood: ReliableFloodControl },
      NoCapabilities,
      { flood: FloodControl }
    >
    expectTypeOf<Mismatch>().toEqualTypeOf<{
      readonly 'error: capability provided with an incompatible control type': 'flood'
    }>()
    expectTypeOf<
      CompositionCheck<{ flood: FloodControl }, NoCapabilities, { flood: FloodControl }>
    >().toEqualTypeOf<unknown>()
  })
})

describe('controls', () => {
  it('group.get(CAP) returns exactly the control type', async () => {
    const host = await stack().use(flood).use(counter).start({ transport })
    expectTypeOf(host).toExtend<Host<{ flood: FloodControl; counter: CounterControl }>>()
    const group = await host.open({ port: 'g', members: ['a'] })
    expectTypeOf(group).toExtend<Group<{ flood: FloodControl; counter: CounterControl }>>()
    expectTypeOf(group.get(COUNTER)).toEqualTypeOf<CounterControl>()
    expectTypeOf(group.get(FLOOD)).toEqualTypeOf<FloodControl>()
    // @ts-expect-error no protocol of this stack provides 'audit'
    group.get(AUDIT)
    // @ts-expect-error same name, different control type
    group.get(NUMERIC_FLOOD)
  })

  it('ctx.get() inside a session is typed and limited to declared requirements', () => {
    defineProtocol({
      name: 'probe',
      requires: [FLOOD],
      create: () => ({
        open(ctx) {
          expectTypeOf(ctx.get(FLOOD)).toEqualTypeOf<FloodControl>()
          // @ts-expect-error probe did not declare COUNTER in requires
          ctx.get(COUNTER)
          return { controls: {} }
        },
      }),
    })
  })

  it('a session must return the declared controls with their types', () => {
    defineProtocol({
      name: 'typed-callbacks',
      provides: [COUNTER],
      create: () => ({
        open: () => ({
          controls: {
            counter: {
              // The control's methods are contextually typed: `by` is a number.
              increment: (by) => expectTypeOf(by).toEqualTypeOf<number>(),
              value: 0,
            },
          },
        }),
      }),
    })
    defineProtocol({
      name: 'missing-control',
      provides: [COUNTER],
      // @ts-expect-error controls lacks 'counter'
      create: () => ({ open: () => ({ controls: {} }) }),
    })
    defineProtocol({
      name: 'wrong-control',
      provides: [COUNTER],
      create: () => ({
        open: () => ({
          // @ts-expect-error increment takes a number, not a string
          controls: { counter: { increment: (by: string) => void by, value: 0 } },
        }),
      }),
    })
  })
})
