import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { defineConfig } from 'vitest/config'

// One project per workspace package that has a test/ folder: `*.test.ts` run as tests,
// `*.test-d.ts` are type tests (vitest typecheck runs tsc over them).
const roots = ['packages', 'apps', 'examples']
const projects = roots.flatMap((root) =>
  existsSync(root)
    ? readdirSync(root)
        .filter((name) => existsSync(join(root, name, 'test')))
        .map((name) => ({
          extends: true as const,
          test: {
            name,
            root: join(root, name),
            include: ['test/**/*.test.ts'],
            typecheck: {
              enabled: true,
              include: ['test/**/*.test-d.ts'],
              tsconfig: join(root, name, 'tsconfig.json'),
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
        test: { name: 'workspace', root: '.', include: ['scripts/test/**/*.test.ts'] },
      },
    ],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
})
