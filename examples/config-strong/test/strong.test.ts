import { defineCommands, stateMachine } from '@consul/dispatcher'
import { dist, Simulation } from '@consul/sim'
import { DISPATCHER, MEMBERSHIP, RECOVERY } from '@consul/xkernel'
import { describe, expect, it } from 'vitest'
import { strongStack } from '../src/index.js'

const log = stateMachine({
  initial: (): string[] => [],
  commands: defineCommands({
    append: (s: string[], a: { line: string }) => s.push(a.line),
  }),
})

async function cluster(seed: number) {
  const sim = new Simulation({
    seed,
    nodes: 3,
    stack: strongStack({ machine: log, suspectAfterMs: 150, checkpointEveryWaves: 8 }),
    network: { delay: dist.uniform(0.5, 2) },
  })
  await sim.start()
  await sim.openAll({ port: 'g' })
  const client = (n: string) => log.client(sim.host(n).group('g')!.get(DISPATCHER))
  return { sim, client }
}

describe('the strong configuration', () => {
  it('survives a crash: the survivors agree on a view without it and apply on', async () => {
    const { sim, client } = await cluster(3)
    sim.at(200, () => sim.crash('n3'))
    sim.at(210, () => void client('n1').submit('append', { line: 'after the crash' }))
    await sim.run({ until: 1500 })
    expect(client('n2').state()).toEqual(['after the crash'])
    for (const n of ['n1', 'n2'])
      expect(sim.host(n).group('g')!.get(MEMBERSHIP).view()).toEqual({
        id: 1,
        configuration: 0,
        members: ['n1', 'n2'],
      })
  })

  it('a replica killed and restarted at once comes back from its checkpoint with the same state', async () => {
    const { sim, client } = await cluster(4)
    for (let t = 5; t < 900; t += 10)
      for (const n of sim.nodes)
        sim.at(t, () => {
          if (sim.isUp(n) && sim.host(n).group('g')!.get(RECOVERY).state() === 'active')
            client(n)
              .submit('append', { line: `${n}@${t}` })
              .catch(() => {})
        })
    sim.at(500, () => sim.crash('n2'))
    sim.at(520, async () => {
      await sim.restart('n2')
    })
    await sim.run({ until: 2_000 })
    const recovery = sim.host('n2').group('g')!.get(RECOVERY)
    expect(recovery.state()).toBe('active')
    expect(recovery.restoredFrom()?.generation).toBeGreaterThan(0)
    expect(client('n2').state()).toEqual(client('n1').state())
    expect(client('n3').state()).toEqual(client('n1').state())
    expect(client('n1').state().length).toBeGreaterThan(100)
  })
})
