import { defineConfig } from 'tsup'

export default defineConfig({
  // Named entries: the CLI stays at dist/cli.js (package.json "bin") though its source lives
  // under src/adapters/, the folder the determinism lint rule exempts.
  entry: { index: 'src/index.ts', cli: 'src/adapters/cli.ts' },
  format: ['esm'],
  dts: { entry: { index: 'src/index.ts' } },
  sourcemap: true,
  clean: true,
  target: 'node20',
})
