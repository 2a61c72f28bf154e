/**
 * Type-level tests: `lamportOrder()` drops into a stack exactly where `totalOrder()` would,
 * and a stack without Psync and the Divider under it does not compile. Run by vitest's typecheck mode and
 * by `tsc --noEmit`; every `@ts-expect-error` must meet an error.
 */
import { divider } from '@consul/divider'
import { psync } from '@consul/psync'
import { ORDER, type OrderControl, stack } from '@consul/xkernel'
import { describe, expectTypeOf, it } from 'vitest'
import { lamportOrder } from '../src/index.js'

describe('lamportOrder() in a stack', () => {
  it('provides the order capability on top of psync', () => {
    const composed = stack().use(psync()).use(divider()).use(lamportOrder())
    type Host = Awaited<ReturnType<typeof composed.start>>
    type ComposedGroup = Awaited<ReturnType<Host['open']>>
    const order = (group: ComposedGroup) => group.get(ORDER)
    expectTypeOf(order).returns.toEqualTypeOf<OrderControl>()
  })

  it('does not compile without psync and the divider below it', () => {
    // @ts-expect-error lamportOrder requires 'psync', which nothing provides
    stack().use(lamportOrder())
    // @ts-expect-error lamportOrder requires 'divider' (specification v2)
    stack().use(psync()).use(lamportOrder())
    // @ts-expect-error the provider comes too late
    stack().use(lamportOrder()).use(psync()).use(divider())
  })
})
