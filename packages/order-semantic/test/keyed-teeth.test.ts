/**
 * The conformance checks reject a broken keyed rule: one that delivers commands early in
 * arrival order, conflicts ignored, fails the suite's semantic-agreement check (the same run
 * that the real rule passes, `keyed-conformance.test.ts`).
 */
import { pruningFor, runOrderScenario } from '@consul/testkit/order'
import { describe, expect, it } from 'vitest'
import { resolveOptions } from '../src/options.js'
import { semanticOrderProtocol } from '../src/protocol.js'
import { ArrivalOrderQueue } from './fixtures/broken-queue.js'
import { keyedSetup, keysOf } from './fixtures/keyed-setup.js'

describe('the conformance checks have teeth for the key mode', () => {
  it('reject a rule that delivers conflicting commands early in arrival order (semantic agreement)', async () => {
    const broken = {
      ...keyedSetup,
      name: 'order-semantic (keys, arrival order)',
      order: () =>
        semanticOrderProtocol({
          ...resolveOptions({ keysOf }),
          queue: (senders) => new ArrivalOrderQueue(senders === undefined ? {} : { senders }),
        }),
    }
    const found = new Set<string>()
    for (const seed of [1, 2, 3]) {
      const run = await runOrderScenario(broken, 'calm', pruningFor(seed), seed)
      for (const p of run.problems) found.add(p.slice(1, p.indexOf(']')))
      if (found.has('semantic agreement')) {
        // The real rule passes the very same run.
        const real = await runOrderScenario(keyedSetup, 'calm', pruningFor(seed), seed)
        expect(real.problems, `seed ${seed}: the real rule`).toEqual([])
        break
      }
    }
    expect([...found]).not.toContain('run')
    expect([...found]).toContain('semantic agreement')
  }, 120_000)
})
