/**
 * The determinism rule is enforced by `pnpm lint` (Biome, with the root biome.json): protocol
 * code under packages/{name}/src and examples/{name}/src may not read ambient time or
 * randomness, schedule outside the framework's Clock, nor reach the network, the file system,
 * the process or the global object. The one exemption is a folder, `src/adapters/`, where each
 * package keeps the code that touches the real world; tests are not protocol code either.
 *
 * This copies the real configuration (and its GritQL plugin) into a scratch workspace, writes
 * every probe once as protocol code, once under an adapters folder and once as a test, lints
 * the whole workspace in one Biome run, and checks each file's diagnostics: every probe fails
 * with a diagnostic from the rule that is meant to catch it, and nothing fails where the rule
 * does not apply.
 */
import { execFile } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

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

const GLOBALS = 'lint/style/noRestrictedGlobals'
const IMPORTS = 'lint/style/noRestrictedImports'
const PLUGIN = 'plugin' // tools/biome/no-math-random.grit

// A distinctive part of each message in biome.json (and the plugin), so a probe that fails
// for some other reason does not pass for this one.
const READS_TIME = "reads time from the framework's Clock (ctx.clock.now())"
const SCHEDULES = "schedules with the framework's Clock (ctx.clock.setTimer"
const SCHEDULES_IMPORT = "reads time and schedules with the framework's Clock"
const RANDOM = "draws randomness from the framework's Random (ctx.random)"
const GLOBAL_OBJECT = 'The global object is a way around the determinism rule'
const PROCESS = 'Protocol code does not touch the process'
const TRANSPORT = "talks through the framework's Transport"
const STORAGE = "persists through the framework's StableStorage"
const BUILTIN = 'Protocol code imports no Node built-in module'
const MATH_RANDOM = 'Math.random is not deterministic'

interface Probe {
  readonly source: string
  /** The rule that must report it (Biome's category, or `plugin` for the GritQL plugin). */
  readonly rule: string
  /** Part of the message it must report. */
  readonly says: string
}

const imports = (specifier: string, name: string) =>
  `import { ${name} } from '${specifier}'\nexport const used = ${name}\n`

/** What the rule rejected before issue #9 §3 and must still reject. */
const before: Record<string, Probe> = {
  'Date.now()': { source: 'export const t = Date.now()\n', rule: GLOBALS, says: READS_TIME },
  'new Date()': { source: 'export const t = new Date()\n', rule: GLOBALS, says: READS_TIME },
  'performance.now()': {
    source: 'export const t = performance.now()\n',
    rule: GLOBALS,
    says: READS_TIME,
  },
  setTimeout: { source: 'setTimeout(() => {}, 1)\n', rule: GLOBALS, says: SCHEDULES },
  setInterval: { source: 'setInterval(() => {}, 1)\n', rule: GLOBALS, says: SCHEDULES },
  setImmediate: { source: 'setImmediate(() => {})\n', rule: GLOBALS, says: SCHEDULES },
  'Math.random()': { source: 'export const r = Math.random()\n', rule: PLUGIN, says: MATH_RANDOM },
  "'node:dgram'": { source: imports('node:dgram', 'createSocket'), rule: IMPORTS, says: TRANSPORT },
  "'dgram'": { source: imports('dgram', 'createSocket'), rule: IMPORTS, says: TRANSPORT },
  "'node:fs'": { source: imports('node:fs', 'readFileSync'), rule: IMPORTS, says: STORAGE },
  "'fs'": { source: imports('fs', 'readFileSync'), rule: IMPORTS, says: STORAGE },
  "'node:fs/promises'": {
    source: imports('node:fs/promises', 'readFile'),
    rule: IMPORTS,
    says: STORAGE,
  },
  "'fs/promises'": { source: imports('fs/promises', 'readFile'), rule: IMPORTS, says: STORAGE },
  "'node:net'": { source: imports('node:net', 'connect'), rule: IMPORTS, says: TRANSPORT },
  "'net'": { source: imports('net', 'connect'), rule: IMPORTS, says: TRANSPORT },
  "import('node:fs')": {
    source: "export const fs = await import('node:fs')\n",
    rule: IMPORTS,
    says: STORAGE,
  },
}

/** The forms issue #9 §3 closes (numbered as there), and other ways around the rule. */
const closed: Record<string, Probe> = {
  "1. setTimeout from 'node:timers'": {
    source: "import { setTimeout } from 'node:timers'\nsetTimeout(() => {}, 1)\n",
    rule: IMPORTS,
    says: SCHEDULES_IMPORT,
  },
  "1. setTimeout from 'timers'": {
    source: "import { setTimeout } from 'timers'\nsetTimeout(() => {}, 1)\n",
    rule: IMPORTS,
    says: SCHEDULES_IMPORT,
  },
  "1. setTimeout from 'node:timers/promises'": {
    source: "import { setTimeout } from 'node:timers/promises'\nawait setTimeout(1)\n",
    rule: IMPORTS,
    says: SCHEDULES_IMPORT,
  },
  "1. setTimeout from 'timers/promises'": {
    source: "import { setTimeout } from 'timers/promises'\nawait setTimeout(1)\n",
    rule: IMPORTS,
    says: SCHEDULES_IMPORT,
  },
  '2. globalThis.setTimeout()': {
    source: 'globalThis.setTimeout(() => {}, 1)\n',
    rule: GLOBALS,
    says: GLOBAL_OBJECT,
  },
  '3. globalThis.Date.now()': {
    source: 'export const t = globalThis.Date.now()\n',
    rule: GLOBALS,
    says: GLOBAL_OBJECT,
  },
  '4. queueMicrotask()': { source: 'queueMicrotask(() => {})\n', rule: GLOBALS, says: SCHEDULES },
  '5. process.nextTick()': {
    source: 'process.nextTick(() => {})\n',
    rule: GLOBALS,
    says: PROCESS,
  },
  '6. process.hrtime()': {
    source: 'export const t = process.hrtime()\n',
    rule: GLOBALS,
    says: PROCESS,
  },
  '6. process.hrtime.bigint()': {
    source: 'export const t = process.hrtime.bigint()\n',
    rule: GLOBALS,
    says: PROCESS,
  },
  '7. process.uptime()': {
    source: 'export const t = process.uptime()\n',
    rule: GLOBALS,
    says: PROCESS,
  },
  '8. crypto.getRandomValues()': {
    source: 'export const r = crypto.getRandomValues(new Uint32Array(1))\n',
    rule: GLOBALS,
    says: RANDOM,
  },
  "9. randomBytes from 'node:crypto'": {
    source: imports('node:crypto', 'randomBytes'),
    rule: IMPORTS,
    says: RANDOM,
  },
  "9. randomBytes from 'crypto'": {
    source: imports('crypto', 'randomBytes'),
    rule: IMPORTS,
    says: RANDOM,
  },
  "9. createHash from 'node:crypto'": {
    source: imports('node:crypto', 'createHash'),
    rule: IMPORTS,
    says: RANDOM,
  },
  "10. Math['random']()": {
    source: "export const r = Math['random']()\n",
    rule: PLUGIN,
    says: MATH_RANDOM,
  },
  '10. const { random } = Math': {
    source: 'const { random } = Math\nexport const r = random()\n',
    rule: PLUGIN,
    says: MATH_RANDOM,
  },
  '10. an alias of Math': {
    source: 'const M = Math\nexport const r = M.random()\n',
    rule: PLUGIN,
    says: MATH_RANDOM,
  },
  '10. Reflect.get(Math, …)': {
    source: "export const r = (Reflect.get(Math, 'random') as () => number)()\n",
    rule: PLUGIN,
    says: MATH_RANDOM,
  },
  "'node:perf_hooks'": {
    source: imports('node:perf_hooks', 'performance'),
    rule: IMPORTS,
    says: SCHEDULES_IMPORT,
  },
  "'node:worker_threads'": {
    source: imports('node:worker_threads', 'Worker'),
    rule: IMPORTS,
    says: BUILTIN,
  },
  "'node:child_process'": {
    source: imports('node:child_process', 'spawn'),
    rule: IMPORTS,
    says: BUILTIN,
  },
  "'child_process'": { source: imports('child_process', 'spawn'), rule: IMPORTS, says: BUILTIN },
  "'node:process'": { source: imports('node:process', 'hrtime'), rule: IMPORTS, says: BUILTIN },
  "'node:os'": { source: imports('node:os', 'hostname'), rule: IMPORTS, says: BUILTIN },
  "export * from 'node:os'": { source: "export * from 'node:os'\n", rule: IMPORTS, says: BUILTIN },
  'global.setTimeout()': {
    source: 'global.setTimeout(() => {}, 1)\n',
    rule: GLOBALS,
    says: GLOBAL_OBJECT,
  },
  'self.Date.now()': {
    source: 'export const t = self.Date.now()\n',
    rule: GLOBALS,
    says: GLOBAL_OBJECT,
  },
  'window.Date.now()': {
    source: 'export const t = window.Date.now()\n',
    rule: GLOBALS,
    says: GLOBAL_OBJECT,
  },
  "Function('return globalThis')()": {
    source: "export const g = Function('return globalThis')()\n",
    rule: GLOBALS,
    says: 'The Function constructor',
  },
  'AbortSignal.timeout()': {
    source: 'export const s = AbortSignal.timeout(1)\n',
    rule: GLOBALS,
    says: SCHEDULES,
  },
  'Intl.DateTimeFormat().format()': {
    source: 'export const s = new Intl.DateTimeFormat().format()\n',
    rule: GLOBALS,
    says: 'Intl reads the host',
  },
}

const probes = { ...before, ...closed }

/** Protocol code that uses the framework's services instead: must pass. */
const clean =
  "import type { Clock, Random } from '@consul/xkernel'\n" +
  'export const later = (clock: Clock, random: Random) =>\n' +
  '  clock.setTimer(Math.floor(random.next() * 5), () => Math.max(0, clock.now()))\n'

interface Diagnostic {
  readonly path: string
  readonly rule: string
  readonly text: string
}

let diagnostics: Diagnostic[] = []

/** Writes `source` at `path` under the scratch workspace; returns `path`. */
function probeFile(path: string, source: string): string {
  mkdirSync(dirname(join(scratch, path)), { recursive: true })
  writeFileSync(join(scratch, path), source)
  return path
}

const slug = (what: string) => what.replace(/[^A-Za-z0-9]+/g, '-').replace(/^-|-$/g, '')
const names = Object.keys(probes)
const at = {
  protocol: (what: string) => `packages/demo/src/probes/${slug(what)}.ts`,
  example: (what: string) => `examples/demo/src/probes/${slug(what)}.ts`,
  adapter: (what: string) => `packages/demo/src/adapters/${slug(what)}.ts`,
  nestedAdapter: (what: string) => `examples/demo/src/adapters/real/${slug(what)}.ts`,
  test: (what: string) => `packages/demo/test/${slug(what)}.test.ts`,
}

beforeAll(async () => {
  for (const [what, probe] of Object.entries(probes)) {
    for (const place of Object.values(at)) probeFile(place(what), probe.source)
  }
  probeFile('packages/demo/src/protocol.ts', clean)
  probeFile('examples/demo/src/protocol.ts', clean)
  // Former single-file exemptions, and an adapters folder that is not src/adapters/.
  for (const path of [
    'packages/xkernel/src/real-clock.ts',
    'packages/demo/src/real-clock.ts',
    'packages/demo/src/session/adapters/clock.ts',
  ]) {
    probeFile(path, 'export const t = performance.now()\nsetTimeout(() => {}, 1)\n')
  }
  let output: string
  try {
    const args = ['lint', '--diagnostic-level=error', '--max-diagnostics=10000', '.']
    const { stdout, stderr } = await run(biome, args, { cwd: scratch, maxBuffer: 64 << 20 })
    output = stdout + stderr
  } catch (error) {
    const e = error as { stdout: string; stderr: string }
    output = e.stdout + e.stderr
  }
  // Each diagnostic starts with a header line `path:line:column category ━━━`.
  diagnostics = output.split(/\n(?=\S+:\d+:\d+ \S+ )/).flatMap((block) => {
    const header = /^(\S+):\d+:\d+ (\S+) /.exec(block.trimStart())
    return header === null ? [] : [{ path: header[1]!, rule: header[2]!, text: block }]
  })
  expect(diagnostics.length).toBeGreaterThan(names.length)
}, 60_000)

const of = (path: string) => diagnostics.filter((d) => d.path === path)

function expectRejected(path: string, probe: Probe): void {
  const found = of(path)
  expect(found, `${path} passed lint`).not.toEqual([])
  const matching = found.filter((d) => d.rule === probe.rule && d.text.includes(probe.says))
  expect(
    matching,
    `no ${probe.rule} diagnostic saying "${probe.says}" in:\n${found.map((d) => d.text).join('\n')}`,
  ).not.toEqual([])
}

describe('determinism lint rule', () => {
  describe('still rejects in protocol code', () => {
    for (const [what, probe] of Object.entries(before)) {
      it(what, () => expectRejected(at.protocol(what), probe))
    }
  })

  describe('rejects the ways around it (issue #9 §3) in protocol code', () => {
    for (const [what, probe] of Object.entries(closed)) {
      it(what, () => expectRejected(at.protocol(what), probe))
    }
  })

  it('applies to examples/*/src as to packages/*/src', () => {
    for (const [what, probe] of Object.entries(probes)) expectRejected(at.example(what), probe)
  })

  it('allows every probe under src/adapters/ (any depth) and in tests', () => {
    for (const what of names) {
      expect(of(at.adapter(what)), what).toEqual([])
      expect(of(at.nestedAdapter(what)), what).toEqual([])
      expect(of(at.test(what)), what).toEqual([])
    }
  })

  it('exempts a folder, not single files: real-clock.ts outside src/adapters/ fails', () => {
    const probe = { source: '', rule: GLOBALS, says: READS_TIME }
    expectRejected('packages/xkernel/src/real-clock.ts', probe)
    expectRejected('packages/demo/src/real-clock.ts', probe)
    expectRejected('packages/demo/src/session/adapters/clock.ts', probe)
  })

  it('accepts protocol code that uses the framework services (and Math.max, Math.floor)', () => {
    expect(of('packages/demo/src/protocol.ts')).toEqual([])
    expect(of('examples/demo/src/protocol.ts')).toEqual([])
  })
})
