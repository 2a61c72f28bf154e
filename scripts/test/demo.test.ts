/** The README's demos keep working. */
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { expect, it } from 'vitest'

const run = promisify(execFile)
const root = fileURLToPath(new URL('../..', import.meta.url))

it('pnpm demo: a 3-process directory cluster through a SIGKILL, a view change, a restart and catching up', async () => {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', 'scripts/demo.ts'], {
    cwd: root,
    timeout: 90_000,
  })
  expect(stdout).toMatch(/OK ← SET greeting at a\n.*hello from a ← GET greeting at b/)
  expect(stdout).toMatch(/view change after \d+ ms: a sees 0\.1 \[a,c\] \(b excluded: failure\)/)
  expect(stdout).toMatch(/writes go on without b: [1-9]\d* more acknowledged since the kill/)
  expect(stdout).toMatch(/b is active again after \d+ ms; view at b: 1\.0 \[a,b,c\]/)
  const lines = [
    ...stdout.matchAll(
      /replica (\w): (\d+) commands applied, \d+ keys, (count:a=\d+ count:c=\d+), digest (\w+)/g,
    ),
  ]
  expect(lines.map((m) => m[1])).toEqual(['a', 'b', 'c'])
  expect(new Set(lines.map((m) => `${m[2]} ${m[3]} ${m[4]}`)).size).toBe(1)
  expect(stdout).toContain(
    'All replicas are equal, and every acknowledged write is applied exactly once.',
  )
}, 120_000)

it('pnpm demo:bank: every replica applies the same sequence, before and after a crash', async () => {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', 'scripts/demo-bank.ts'], {
    cwd: root,
    timeout: 60_000,
  })
  expect(stdout).toContain('replica b: 300 commands applied')
  expect(stdout).toMatch(
    /After b is back:\n {2}replica a: 401 commands applied, balance (\d+)\n {2}replica b: 401 commands applied, balance \1\n {2}replica c: 401 commands applied, balance \1/,
  )
  expect(stdout).toContain('Every replica applied the same sequence.')
})
