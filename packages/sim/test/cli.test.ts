import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

const run = promisify(execFile)
const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url))
const cwd = fileURLToPath(new URL('..', import.meta.url))

async function sim(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [cli, ...args], { cwd })
    return { code: 0, stdout, stderr }
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string }
    return { code: e.code, stdout: e.stdout, stderr: e.stderr }
  }
}

describe('consul-sim CLI', () => {
  it('prints one summary line per seed and the same hash for the same seed', async () => {
    const a = await sim(['--scenario', 'test/fixtures/flood-scenario.ts', '--seeds', '3..5'])
    expect(a.code).toBe(0)
    const lines = a.stdout.trim().split('\n')
    expect(lines).toHaveLength(4)
    expect(lines[0]).toMatch(
      /^seed=3 ok nodes=3 events=\d+ virtual=2000ms wall=\d+ms hash=[0-9a-f]{16} env: /,
    )
    expect(lines[3]).toBe('flood-swarm: 3 passed, 0 failed')
    const b = await sim([
      '--scenario',
      'test/fixtures/flood-scenario.ts',
      '--seed',
      '4',
      '--nodes',
      '3',
    ])
    const hash = (text: string) => /hash=([0-9a-f]{16})/.exec(text)![1]
    expect(hash(b.stdout)).toBe(hash(lines[1]!))
  })

  it('reports a failing seed with the command that replays it, and exits 1', async () => {
    const r = await sim(['--scenario', 'test/fixtures/failing-scenario.ts', '--seeds', '2..3'])
    expect(r.code).toBe(1)
    expect(r.stdout).toMatch(/^seed=2 ok/m)
    expect(r.stdout).toMatch(/^seed=3 FAIL/m)
    expect(r.stdout).toContain('no-forbidden-group: a node opened the forbidden group')
    expect(r.stdout).toContain(
      '  replay: pnpm sim --scenario test/fixtures/failing-scenario.ts --seed 3 --nodes 2',
    )
    expect(r.stdout).toContain('fails-on-odd-seeds: 1 passed, 1 failed')
    // The replay line reproduces the failure.
    const replay = await sim([
      '--scenario',
      'test/fixtures/failing-scenario.ts',
      '--seed',
      '3',
      '--nodes',
      '2',
    ])
    expect(replay.code).toBe(1)
    expect(replay.stdout).toMatch(/^seed=3 FAIL/m)
  })

  it('--json prints machine-readable results', async () => {
    const r = await sim(['--scenario', 'test/fixtures/flood-scenario.ts', '--seed', '9', '--json'])
    const first = JSON.parse(r.stdout.split('\n')[0]!) as {
      seed: number
      ok: boolean
      traceHash: string
    }
    expect(first.seed).toBe(9)
    expect(first.ok).toBe(true)
    expect(first.traceHash).toMatch(/^[0-9a-f]{16}$/)
  })

  it('usage errors exit 2 with a message', async () => {
    const r = await sim(['--seeds', '5..1', '--scenario', 'x.ts'])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('B must be >= A')
    const missing = await sim(['--seed', '1'])
    expect(missing.code).toBe(2)
    expect(missing.stderr).toContain('--scenario is required')
    const notScenario = await sim(['--scenario', 'test/fixtures/flood.ts', '--seed', '1'])
    expect(notScenario.code).toBe(2)
    expect(notScenario.stderr).toContain('does not export a scenario')
  })
})
