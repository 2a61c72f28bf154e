/** The README's `pnpm demo` keeps working: three replicas agree, through a crash and restart. */
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { expect, it } from 'vitest'

const run = promisify(execFile)
const root = fileURLToPath(new URL('../..', import.meta.url))

it('pnpm demo: every replica applies the same sequence, before and after a crash', async () => {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', 'scripts/demo.ts'], {
    cwd: root,
    timeout: 60_000,
  })
  expect(stdout).toContain('replica b: 300 commands applied')
  expect(stdout).toMatch(
    /After b is back:\n {2}replica a: 401 commands applied, balance (\d+)\n {2}replica b: 401 commands applied, balance \1\n {2}replica c: 401 commands applied, balance \1/,
  )
  expect(stdout).toContain('Every replica applied the same sequence.')
})
