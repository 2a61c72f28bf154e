/**
 * A campaign's per-seed verdicts kept in a results file, keyed by a hash of the code the
 * seeds ran on, so that chunks run in different sessions add up — and a change of that code
 * starts the file afresh (the earlier results are summed up in one line under `earlier`).
 *
 * The code key (`codeKey`) hashes what a seed actually runs: the files under the directories
 * the campaign loads from source (e.g. `packages/recovery/src`), the built `dist/**.js` and
 * `package.json` of every workspace package those sources import by name (`@consul/…`) and of
 * the workspace packages those depend on, the resolved version of every other dependency
 * (its path in the pnpm store), and the Node version. Not git state: an uncommitted edit that
 * was built counts, and a commit that only touched docs or tests elsewhere does not. (Build
 * output of unchanged sources is the same bytes, so a rebuild keeps the key.)
 *
 * The file: `{ campaign, about, code, codeOf, node, commits, seeds, earlier }` — `seeds` maps a
 * seed to its trace hash when it passed, or to `{ hash, problems }` when it failed; `commits`
 * lists the `git rev-parse --short HEAD` (with `+dirty` when the hashed directories had
 * uncommitted changes) of each session that added to it. One seed a line, for readable diffs.
 * Writers take a lock file beside it and merge with what is there, so two runs at once do not
 * lose each other's seeds.
 */
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import {
  closeSync,
  existsSync,
  openSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs'
import { dirname, join, relative } from 'node:path'

export interface CodeKey {
  /** 16 hex digits. */
  readonly code: string
  /** The directories hashed (relative to the root), sorted. */
  readonly codeOf: readonly string[]
  readonly node: string
  /** `git rev-parse --short HEAD`, `+dirty` if the hashed directories' sources changed. */
  readonly commit: string
}

function filesUnder(dir: string, keep: (name: string) => boolean): string[] {
  if (!existsSync(dir)) return []
  const out: string[] = []
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) {
      if (entry.name !== 'node_modules') out.push(...filesUnder(path, keep))
    } else if (entry.isFile() && keep(entry.name)) out.push(path)
  }
  return out
}

interface PackageJson {
  readonly name?: string
  readonly dependencies?: Record<string, string>
  readonly peerDependencies?: Record<string, string>
}

function readJson<T>(path: string): T {
  return JSON.parse(readFileSync(path, 'utf8')) as T
}

/**
 * The key of the code under `root` that a campaign loading `sources` (directories relative to
 * `root`, run from source) runs on.
 */
export function codeKey(root: string, sources: readonly string[]): CodeKey {
  const workspace = new Map<string, string>()
  for (const entry of readdirSync(join(root, 'packages'), { withFileTypes: true })) {
    const manifest = join(root, 'packages', entry.name, 'package.json')
    if (entry.isDirectory() && existsSync(manifest)) {
      const name = readJson<PackageJson>(manifest).name
      if (name !== undefined) workspace.set(name, join('packages', entry.name))
    }
  }
  const sourceFiles = sources.flatMap((s) =>
    filesUnder(join(root, s), (n) => /\.(m|c)?[jt]sx?$/.test(n) || n.endsWith('.json')),
  )
  const wanted: string[] = []
  for (const file of sourceFiles)
    for (const m of readFileSync(file, 'utf8').matchAll(/from\s+['"](@consul\/[\w.-]+)/g))
      wanted.push(m[1]!)
  const packages = new Set<string>()
  const external = new Set<string>()
  const visit = (name: string, from: string) => {
    const dir = workspace.get(name)
    if (dir === undefined) {
      // The version actually installed: pnpm's store path names it.
      const link = join(root, from, 'node_modules', name)
      if (existsSync(link)) external.add(relative(root, realpathSync(link)))
      else external.add(`${name} (not installed under ${from})`)
      return
    }
    if (packages.has(dir)) return
    packages.add(dir)
    const json = readJson<PackageJson>(join(root, dir, 'package.json'))
    for (const dep of Object.keys({ ...json.dependencies, ...json.peerDependencies }))
      visit(dep, dir)
  }
  for (const source of sources) {
    // A source directory's own package: its dependencies count too.
    let dir = source
    while (dir !== '.' && !existsSync(join(root, dir, 'package.json'))) dir = dirname(dir)
    for (const name of wanted) visit(name, dir)
  }
  const files = [
    ...sourceFiles,
    ...[...packages].flatMap((dir) => [
      join(root, dir, 'package.json'),
      ...filesUnder(join(root, dir, 'dist'), (n) => /\.(m|c)?js$/.test(n)),
    ]),
  ]
    .map((f) => relative(root, f))
    .sort()
  const hash = createHash('sha256')
  for (const file of files)
    hash.update(
      `${file}\0${createHash('sha256')
        .update(readFileSync(join(root, file)))
        .digest('hex')}\n`,
    )
  for (const dep of [...external].sort()) hash.update(`dep\0${dep}\n`)
  hash.update(`node\0${process.version}\n`)
  const codeOf = [...new Set([...sources, ...packages])].sort()
  let commit = 'no git'
  try {
    const git = (...args: string[]) =>
      execFileSync('git', ['-C', root, ...args], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      }).trim()
    commit = git('rev-parse', '--short', 'HEAD')
    if (git('status', '--porcelain', '--', ...codeOf) !== '') commit += '+dirty'
  } catch {}
  return { code: hash.digest('hex').slice(0, 16), codeOf, node: process.version, commit }
}

export interface SeedResult {
  readonly hash: string
  readonly problems: readonly string[]
}

type Stored = string | { readonly hash: string; readonly problems: readonly string[] }

export interface ResultsFile {
  readonly campaign: string
  readonly about: string
  readonly code: string
  readonly codeOf: readonly string[]
  readonly node: string
  readonly commits: readonly string[]
  readonly seeds: Readonly<Record<string, Stored>>
  /** Summaries of the results on earlier code, newest last. */
  readonly earlier: readonly {
    readonly code: string
    readonly commits: readonly string[]
    readonly summary: string
  }[]
}

export function loadResults(path: string): ResultsFile | undefined {
  return existsSync(path) ? readJson<ResultsFile>(path) : undefined
}

/** The seeds of a results file, as verdicts. */
export function seedsOf(file: ResultsFile | undefined): Map<number, SeedResult> {
  const out = new Map<number, SeedResult>()
  for (const [seed, stored] of Object.entries(file?.seeds ?? {}))
    out.set(Number(seed), typeof stored === 'string' ? { hash: stored, problems: [] } : stored)
  return out
}

/** `1..5, 7, 9..12` */
export function ranges(seeds: Iterable<number>): string {
  const sorted = [...seeds].sort((a, b) => a - b)
  const parts: string[] = []
  for (let i = 0; i < sorted.length; ) {
    let j = i
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++
    parts.push(i === j ? `${sorted[i]}` : `${sorted[i]}..${sorted[j]}`)
    i = j + 1
  }
  return parts.length === 0 ? 'none' : parts.join(', ')
}

/** One line: what a file's seeds add up to. */
export function summaryOf(seeds: ReadonlyMap<number, SeedResult>): string {
  const failed = [...seeds].filter(([, r]) => r.problems.length > 0).map(([s]) => s)
  let prefix = 0
  while (seeds.has(prefix + 1)) prefix++
  const all = `${seeds.size} seeds recorded (${ranges(seeds.keys())}): ${seeds.size - failed.length} passed, ${failed.length} failed${failed.length === 0 ? '' : ` (${ranges(failed)})`}`
  if (prefix === 0) return all
  const prefixFailed = failed.filter((s) => s <= prefix)
  return `seeds 1..${prefix} ${prefixFailed.length === 0 ? 'all passed' : `recorded, ${prefix - prefixFailed.length} passed, ${prefixFailed.length} failed (${ranges(prefixFailed)})`}; ${all}`
}

function serialize(file: ResultsFile): string {
  const seeds = Object.entries(file.seeds)
    .sort(([a], [b]) => Number(a) - Number(b))
    .map(([seed, stored]) => `    ${JSON.stringify(seed)}: ${JSON.stringify(stored)}`)
  const text = JSON.stringify({ ...file, seeds: '@seeds@' }, null, 2)
  return `${text.replace('"@seeds@"', seeds.length === 0 ? '{}' : `{\n${seeds.join(',\n')}\n  }`)}\n`
}

function withLock<T>(path: string, fn: () => T): T {
  const lock = `${path.replace(/\.json$/, '')}.lock.tmp`
  for (let attempt = 0; ; attempt++) {
    try {
      closeSync(openSync(lock, 'wx'))
      break
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      // A lock older than a minute was left by a process that died holding it.
      try {
        if (Date.now() - statSync(lock).mtimeMs > 60_000) unlinkSync(lock)
      } catch {}
      if (attempt > 600) throw new Error(`${lock} stays locked`)
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100)
    }
  }
  try {
    return fn()
  } finally {
    unlinkSync(lock)
  }
}

export interface RecordOutcome {
  /** Seeds recorded on the same code before with another trace hash (kept as they were). */
  readonly conflicts: readonly { seed: number; recorded: string; now: string }[]
  /** The file was for other code and was started afresh. */
  readonly restarted: boolean
}

/**
 * Adds `results` to the file at `path` (created if absent) for the code `key`. A file for
 * other code is started afresh, its results summed up in `earlier`. A seed already recorded on
 * this code keeps its record; one whose trace hash differs is returned as a conflict (the same
 * code and seed must give the same run).
 */
export function recordResults(
  path: string,
  campaign: string,
  about: string,
  key: CodeKey,
  results: ReadonlyMap<number, SeedResult>,
): RecordOutcome {
  return withLock(path, () => {
    const old = loadResults(path)
    const restarted = old !== undefined && old.code !== key.code
    const earlier = [...(old?.earlier ?? [])]
    if (restarted && Object.keys(old.seeds).length > 0)
      earlier.push({ code: old.code, commits: old.commits, summary: summaryOf(seedsOf(old)) })
    const seeds: Record<string, Stored> = restarted ? {} : { ...old?.seeds }
    const conflicts: { seed: number; recorded: string; now: string }[] = []
    for (const [seed, result] of results) {
      const before = seeds[String(seed)]
      if (before !== undefined) {
        const recorded = typeof before === 'string' ? before : before.hash
        if (recorded !== result.hash) conflicts.push({ seed, recorded, now: result.hash })
        continue
      }
      seeds[String(seed)] =
        result.problems.length === 0
          ? result.hash
          : { hash: result.hash, problems: [...result.problems] }
    }
    const commits = restarted ? [] : [...(old?.commits ?? [])]
    if (!commits.includes(key.commit)) commits.push(key.commit)
    const file: ResultsFile = {
      campaign,
      about,
      code: key.code,
      codeOf: key.codeOf,
      node: key.node,
      commits,
      seeds,
      earlier,
    }
    const tmp = `${path}.${process.pid}.tmp`
    writeFileSync(tmp, serialize(file))
    renameSync(tmp, path)
    return { conflicts, restarted }
  })
}
