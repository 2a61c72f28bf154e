import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'

// One project per workspace package that has a test/ folder: `*.test.ts` run as tests,
// `*.test-d.ts` are type tests (vitest typecheck runs tsc over them). Each package's `test`
// script runs its own project through this file (`--project <name>`), so turbo caches
// tests per package; the `workspace` project holds the repository's own checks.
const here = fileURLToPath(new URL('.', import.meta.url))
const roots = ['packages', 'apps', 'examples']
const projects = roots.flatMap((root) =>
  existsSync(join(here, root))
    ? readdirSync(join(here, root))
        .filter((name) => existsSync(join(here, root, name, 'test')))
        .map((name) => ({
          extends: true as const,
          test: {
            name,
            root: join(here, root, name),
            include: ['test/**/*.test.ts'],
            typecheck: {
              enabled: true,
              include: ['test/**/*.test-d.ts'],
              tsconfig: join(here, root, name, 'tsconfig.json'),
            },
          },
        }))
    : [],
)

export default defineConfig({
  test: {
    projects: [
      ...projects,
      {
        extends: true as const,
        test: { name: 'workspace', root: here, include: ['scripts/test/**/*.test.ts'] },
      },
    ],
    // Under CI each run also writes vitest's own JSON result next to where it ran; .ci/run
    // adds them up into its summary line.
    reporters: process.env.CI
      ? ['default', ['json', { outputFile: join(process.cwd(), '.vitest-results.json') }]]
      : ['default'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
})
