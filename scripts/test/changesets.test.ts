/** Every pending changeset parses and names workspace packages (a malformed one breaks releases). */
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import parse from '@changesets/parse'
import { expect, it } from 'vitest'

const root = fileURLToPath(new URL('../..', import.meta.url))

function workspacePackages(): Set<string> {
  const names = new Set<string>()
  for (const dir of ['packages', 'apps', 'examples']) {
    for (const name of readdirSync(join(root, dir))) {
      try {
        names.add(
          (
            JSON.parse(readFileSync(join(root, dir, name, 'package.json'), 'utf8')) as {
              name: string
            }
          ).name,
        )
      } catch {
        // not a package folder
      }
    }
  }
  return names
}

it('every changeset parses, names known packages and says something', () => {
  const known = workspacePackages()
  const files = readdirSync(join(root, '.changeset')).filter(
    (f) => f.endsWith('.md') && f !== 'README.md',
  )
  expect(files.length).toBeGreaterThan(0)
  for (const file of files) {
    const changeset = parse(readFileSync(join(root, '.changeset', file), 'utf8'))
    expect(changeset.releases.length, file).toBeGreaterThan(0)
    for (const release of changeset.releases) {
      expect(known.has(release.name), `${file}: ${release.name}`).toBe(true)
      expect(['patch', 'minor', 'major'], file).toContain(release.type)
    }
    expect(changeset.summary.trim().length, file).toBeGreaterThan(20)
  }
})
