import { dist, Simulation } from '@consul/sim'
import { MEMBERSHIP, ORDER } from '@consul/xkernel'
import { describe, expect, it } from 'vitest'
import { strongStack } from '../src/index.js'

const text = (s: string) => new TextEncoder().encode(s)

describe('the strong configuration', () => {
  it('survives a crash: the survivors agree on a view without it and order on', async () => {
    const sim = new Simulation({
      seed: 3,
      nodes: 3,
      stack: strongStack(),
      network: { delay: dist.uniform(0.5, 2) },
    })
    await sim.start()
    await sim.openAll({ port: 'g' })
    const delivered: string[] = []
    sim
      .host('n2')
      .group('g')!
      .get(ORDER)
      .onDeliver((c) => void delivered.push(new TextDecoder().decode(c.command)))
    sim.at(200, () => sim.crash('n3'))
    sim.at(210, () => void sim.host('n1').group('g')!.get(ORDER).submit(text('after the crash')))
    await sim.run({ until: 1500 })
    expect(delivered).toEqual(['after the crash'])
    for (const n of ['n1', 'n2'])
      expect(sim.host(n).group('g')!.get(MEMBERSHIP).view()).toEqual({
        id: 1,
        members: ['n1', 'n2'],
      })
  })
})
