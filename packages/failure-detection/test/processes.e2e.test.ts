/**
 * Real processes over loopback UDP, the weak configuration: `kill -9` one of three and the
 * survivors suspect it and keep ordering; `SIGSTOP` one past the timeout and `SIGCONT` it, and
 * it is suspected, then masked back in.
 */
import { type ChildProcess, fork } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createSocket } from 'node:dgram'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'

const script = fileURLToPath(new URL('./fixtures/replica.ts', import.meta.url))
// Generous: under CI every core is busy with other packages' tests; the benchmark measures the
// default (150 ms) on a quiet machine.
const SUSPECT_AFTER_MS = 400

interface Proc {
  readonly name: string
  readonly child: ChildProcess
  readonly messages: { type: string; [k: string]: unknown }[]
}
const running: Proc[] = []
afterEach(() => {
  for (const p of running.splice(0)) p.child.kill('SIGKILL')
})

async function ports(n: number): Promise<number[]> {
  const sockets = await Promise.all(
    Array.from({ length: n }, () => {
      const s = createSocket('udp4')
      return new Promise<ReturnType<typeof createSocket>>((r) => s.bind(0, '127.0.0.1', () => r(s)))
    }),
  )
  const out = sockets.map((s) => s.address().port)
  for (const s of sockets) s.close()
  return out
}

async function trio(): Promise<Proc[]> {
  const names = ['a', 'b', 'c']
  const p = await ports(3)
  const peers = Object.fromEntries(names.map((n, i) => [n, { host: '127.0.0.1', port: p[i]! }]))
  const keyHex = randomBytes(32).toString('hex')
  const procs = names.map((name) => {
    const child = fork(
      script,
      [JSON.stringify({ self: name, peers, keyHex, suspectAfterMs: SUSPECT_AFTER_MS })],
      {
        execArgv: ['--import', 'tsx'],
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      },
    )
    const proc: Proc = { name, child, messages: [] }
    child.on('message', (m) => proc.messages.push(m as Proc['messages'][number]))
    running.push(proc)
    return proc
  })
  await until(() => procs.every((x) => x.messages.some((m) => m.type === 'ready')), 30_000)
  return procs
}

async function until(ok: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!ok()) {
    if (Date.now() > deadline) throw new Error('timed out waiting')
    await new Promise((r) => setTimeout(r, 10))
  }
}

const delivered = (p: Proc) => p.messages.filter((m) => m.type === 'delivered').map((m) => m.text)

describe('weak configuration, real processes over UDP', () => {
  it('kill -9 one of three: the survivors suspect it within the timeout (plus a margin) and keep ordering', async () => {
    const [a, b, c] = await trio()
    a!.child.send({ type: 'submit', text: 'before' })
    await until(() => [a, b, c].every((p) => delivered(p!).includes('before')), 20_000)
    const killedAt = Date.now()
    c!.child.kill('SIGKILL')
    await until(
      () => [a, b].every((p) => p!.messages.some((m) => m.type === 'suspect' && m.member === 'c')),
      10_000,
    )
    const detectedIn = Date.now() - killedAt
    for (const p of [a, b]) {
      const s = p!.messages.find((m) => m.type === 'suspect')!
      expect(s.member).toBe('c')
      expect((s.reason as { silentForMs: number }).silentForMs).toBeGreaterThan(SUSPECT_AFTER_MS)
    }
    // Within the timeout plus a generous margin for a loaded 2-core machine.
    expect(detectedIn).toBeLessThan(SUSPECT_AFTER_MS + 1_000)
    b!.child.send({ type: 'submit', text: 'after' })
    await until(() => [a, b].every((p) => delivered(p!).includes('after')), 10_000)
    expect(delivered(a!)).toEqual(delivered(b!))
  })

  it('SIGSTOP one past the timeout, then SIGCONT: it is suspected, the others keep ordering, and it is masked back in', async () => {
    const [a, b, c] = await trio()
    c!.child.kill('SIGSTOP')
    const suspectsC = (p: Proc) => p.messages.some((m) => m.type === 'suspect' && m.member === 'c')
    await until(() => [a, b].every((p) => suspectsC(p!)), 10_000)
    a!.child.send({ type: 'submit', text: 'while-stopped' })
    await until(() => [a, b].every((p) => delivered(p!).includes('while-stopped')), 10_000)
    c!.child.kill('SIGCONT')
    await until(
      () => [a, b].every((p) => p!.messages.some((m) => m.type === 'alive' && m.member === 'c')),
      10_000,
    )
    // Nobody else was suspected: startup skew and load are not failures.
    for (const p of [a, b])
      expect(p!.messages.filter((m) => m.type === 'suspect').map((m) => m.member)).toEqual(['c'])
    // c itself was stopped: its own timers ran late by the whole stop, so it accused nobody.
    await new Promise((r) => setTimeout(r, 500))
    expect(c!.messages.filter((m) => m.type === 'suspect')).toEqual([])
  })
})
