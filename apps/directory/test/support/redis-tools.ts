/** Debian's redis-tools (redis-cli, redis-benchmark): installed when missing, as CI does. */
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'

const run = promisify(execFile)

export async function ensureRedisCli(): Promise<void> {
  try {
    await run('redis-cli', ['--version'])
    return
  } catch {
    // not installed
  }
  if (process.getuid?.() !== 0)
    throw new Error('redis-cli is missing: apt-get install redis-tools (as root)')
  await run('apt-get', ['install', '-y', '--no-install-recommends', 'redis-tools'], {
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    timeout: 300_000,
  }).catch(async () => {
    await run('apt-get', ['update'], { timeout: 300_000 })
    await run('apt-get', ['install', '-y', '--no-install-recommends', 'redis-tools'], {
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      timeout: 300_000,
    })
  })
}
