/** The key mode's options and bad input: `keysOf` instead of `classOf`, and what it returns. */
import { divider } from '@consul/divider'
import { psync } from '@consul/psync'
import { dist, Simulation } from '@consul/sim'
import { ORDER, stack } from '@consul/xkernel'
import { describe, expect, it } from 'vitest'
import { type KeysOf, OrderError, type SemanticOrderOptions, semanticOrder } from '../src/index.js'

const keysOf: KeysOf = (c) => ({ keys: [String(c[0])], write: true })

describe('keysOf', () => {
  it('takes exactly one of classOf and keysOf, keysOf a function', () => {
    expect(() => semanticOrder({ keysOf })).not.toThrow()
    expect(() => semanticOrder({ keysOf, classOf: (c) => c[0]! })).toThrow(/not both/)
    expect(() => semanticOrder({ keysOf: 'k' } as unknown as SemanticOrderOptions)).toThrow(
      /keysOf must be a function/,
    )
    expect(() => semanticOrder({ keysOf, maxBatch: 0 })).toThrow(OrderError)
  })

  it("refuses a command whose keys are bad (BAD_CLASS) and sends nothing; 'all' and no keys are fine", async () => {
    const answers: unknown[] = [
      'all',
      { keys: [], write: false },
      { keys: ['k'] },
      { keys: 'k', write: true },
      { keys: [1], write: true },
      'some',
      null,
    ]
    const sim = new Simulation({
      seed: 1,
      nodes: 2,
      stack: stack()
        .use(psync({ logEveryMs: 1 }))
        .use(divider())
        .use(
          semanticOrder({
            keysOf: (c) => {
              if (c[0] === 0xff) throw new Error('no keys for 0xff')
              return answers[c[0]!] as ReturnType<KeysOf>
            },
          }),
        ),
      network: { delay: dist.constant(1) },
    })
    await sim.start()
    await sim.openAll({ port: 'g' })
    const order = sim.host('n1').group('g')!.get(ORDER)
    const outcome = (p: Promise<unknown>) =>
      p.then(
        () => 'resolved',
        (e: unknown) => (OrderError.isInstance(e) ? `${e.code}: ${e.message}` : String(e)),
      )
    const results = [0, 1, 2, 3, 4, 5, 6, 0xff].map((i) => outcome(order.submit(Uint8Array.of(i))))
    await sim.run({ until: 200 })
    const [all, none, ...bad] = await Promise.all(results)
    expect(all).toBe('resolved')
    expect(none).toBe('resolved')
    for (const e of bad.slice(0, 5)) expect(e).toMatch(/^BAD_CLASS: submit\(\): keysOf returned/)
    expect(bad[5]).toMatch(/^BAD_CLASS: submit\(\): keysOf threw: no keys for 0xff/)
    expect(sim.host('n2').stats()['order-semantic']?.delivered).toBe(2)
  })
})
