import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { defineCommands, stateMachine } from '@consul/dispatcher'
import { dist, Simulation } from '@consul/sim'
import { DISPATCHER, PSYNC } from '@consul/xkernel'
import { describe, expect, it } from 'vitest'
import { weakStack } from '../src/index.js'

const log = stateMachine({
  initial: (): string[] => [],
  commands: defineCommands({
    append: (s: string[], a: { line: string }) => s.push(a.line),
  }),
})

describe('the weak configuration', () => {
  it('survives a crash: each survivor masks the crashed replica out on its own and applies on', async () => {
    const sim = new Simulation({
      seed: 3,
      nodes: 3,
      stack: weakStack({ machine: log }),
      network: { delay: dist.uniform(0.5, 2) },
    })
    await sim.start()
    await sim.openAll({ port: 'g' })
    const client = (n: string) => log.client(sim.host(n).group('g')!.get(DISPATCHER))
    sim.at(200, () => sim.crash('n3'))
    sim.at(
      210,
      () => void client('n1').submit('append', { line: 'after the crash' }, { level: 'agreed' }),
    )
    await sim.run({ until: 1500 })
    expect(client('n2').state()).toEqual(['after the crash'])
    expect(sim.host('n1').group('g')!.get(PSYNC).members()).toEqual(['n1', 'n2'])
  })

  it('installs no agreement package: neither it nor anything it depends on lists @consul/membership', () => {
    const seen = new Set<string>()
    const visit = (packageJson: string) => {
      const manifest = JSON.parse(readFileSync(packageJson, 'utf8')) as {
        name: string
        dependencies?: Record<string, string>
        peerDependencies?: Record<string, string>
        optionalDependencies?: Record<string, string>
      }
      if (seen.has(manifest.name)) return
      seen.add(manifest.name)
      const require = createRequire(packageJson)
      for (const deps of [
        manifest.dependencies,
        manifest.peerDependencies,
        manifest.optionalDependencies,
      ])
        for (const name of Object.keys(deps ?? {})) {
          expect(name, `${manifest.name} depends on ${name}`).not.toBe('@consul/membership')
          if (name.startsWith('@consul/')) visit(require.resolve(`${name}/package.json`))
        }
    }
    visit(new URL('../package.json', import.meta.url).pathname)
    // It did look at the whole stack.
    expect([...seen].sort()).toEqual(
      expect.arrayContaining([
        '@consul/failure-detection',
        '@consul/psync',
        '@consul/xkernel',
        'consul-config-weak',
      ]),
    )
  })
})
