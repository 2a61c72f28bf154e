/**
 * The determinism rule is enforced by `pnpm lint` (Biome, with the root biome.json): protocol
 * code under packages/{name}/src may not read ambient time or randomness nor import the
 * network and file system directly; the adapter files and tests may. This runs the real
 * configuration over a scratch workspace and checks both sides.
 */
import { execFile } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, describe, expect, it } from 'vitest'

const run = promisify(execFile)
const root = fileURLToPath(new URL('../..', import.meta.url))
const biome = join(root, 'node_modules', '.bin', 'biome')
const scratch = mkdtempSync(join(tmpdir(), 'consul-lint-'))

const config = JSON.parse(readFileSync(join(root, 'biome.json'), 'utf8')) as Record<string, unknown>
config.vcs = { enabled: false }
config.$schema = undefined
writeFileSync(join(scratch, 'biome.json'), JSON.stringify(config))
cpSync(join(root, 'tools'), join(scratch, 'tools'), { recursive: true })

afterAll(() => rmSync(scratch, { recursive: true, force: true }))

async function lint(path: string, source: string): Promise<{ failed: boolean; output: string }> {
  const file = join(scratch, path)
  mkdirSync(dirname(file), { recursive: true })
  writeFileSync(file, source)
  try {
    const { stdout, stderr } = await run(biome, ['lint', '--max-diagnostics=100', path], {
      cwd: scratch,
    })
    return { failed: false, output: stdout + stderr }
  } catch (error) {
    const e = error as { stdout: string; stderr: string }
    return { failed: true, output: e.stdout + e.stderr }
  } finally {
    rmSync(file)
  }
}

const offending = {
  'Date.now': 'export const t = Date.now()\n',
  'new Date': 'export const t = new Date()\n',
  'performance.now': 'export const t = performance.now()\n',
  setTimeout: 'setTimeout(() => {}, 1)\n',
  setInterval: 'setInterval(() => {}, 1)\n',
  setImmediate: 'setImmediate(() => {})\n',
  'Math.random': 'export const r = Math.random()\n',
  'node:dgram': "import { createSocket } from 'node:dgram'\nexport const s = createSocket\n",
  'node:fs': "import { readFileSync } from 'node:fs'\nexport const r = readFileSync\n",
  'node:net': "import { connect } from 'node:net'\nexport const c = connect\n",
}

describe('determinism lint rule', () => {
  for (const [what, source] of Object.entries(offending)) {
    it(`rejects ${what} in protocol code`, async () => {
      const result = await lint('packages/demo/src/protocol.ts', source)
      expect(result.failed).toBe(true)
      expect(result.output).toMatch(
        /noRestrictedGlobals|noRestrictedImports|Math\.random is not deterministic/,
      )
    })
  }

  it('allows them in the real-clock adapter and in tests', async () => {
    const source =
      'export const t = performance.now()\nsetTimeout(() => {}, 1)\nexport const r = Math.random()\n'
    expect((await lint('packages/xkernel/src/real-clock.ts', source)).failed).toBe(false)
    expect((await lint('packages/demo/test/thing.test.ts', source)).failed).toBe(false)
  })

  it('accepts protocol code that uses the framework services', async () => {
    const source =
      "import type { Clock } from '@consul/xkernel'\nexport const later = (clock: Clock) => clock.setTimer(5, () => clock.now())\n"
    expect((await lint('packages/demo/src/protocol.ts', source)).failed).toBe(false)
  })
})
