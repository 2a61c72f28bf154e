import { DISPATCHER, type DispatcherControl } from '@consul/xkernel'
import { expectTypeOf, test } from 'vitest'
import { defineCommands, stateMachine } from '../src/index.js'

const machine = stateMachine({
  initial: () => ({ n: 0 }),
  commands: defineCommands({
    add: (s: { n: number }, a: { by: number }) => {
      s.n += a.by
      return s.n
    },
    name: (_s: { n: number }, _a: Record<string, never>) => 'counter',
  }),
})

test('submit is typed by the machine: argument and result types come from the handlers', () => {
  const client = machine.client({} as DispatcherControl)
  expectTypeOf(client.submit('add', { by: 2 })).toEqualTypeOf<Promise<number>>()
  expectTypeOf(client.submit('name', {})).toEqualTypeOf<Promise<string>>()
  // @ts-expect-error: no such command
  void client.submit('sub', { by: 1 })
  // @ts-expect-error: wrong argument type
  void client.submit('add', { by: 'two' })
  expectTypeOf(client.state()).toEqualTypeOf<{ n: number }>()
  expectTypeOf(DISPATCHER.name).toEqualTypeOf<'dispatcher'>()
})
