/**
 * A local cluster of directory replicas, each its own process (`consul-directory serve`) on
 * loopback, one LMDB directory each, one random group key. For `consul-directory cluster`,
 * the demo, tests and benchmarks. A replica can be killed (`SIGKILL` by default), paused
 * (`SIGSTOP`) and started again on the same storage and ports.
 *
 * ```ts
 * import { startCluster } from '@consul/directory/cluster'
 * const cluster = await startCluster({ replicas: 3 })
 * console.log(cluster.replicas.map((r) => r.port)) // Redis ports
 * await cluster.replica('b').kill()
 * await cluster.replica('b').start()
 * await cluster.stop()
 * ```
 */
import { type ChildProcess, fork } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createSocket } from 'node:dgram'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { ReplicaStatus } from './connection.js'
import type { DirectoryDump } from './replica.js'

export interface ClusterOptions {
  /** How many replicas (named a, b, c, …). Default 3. */
  readonly replicas?: number
  /** Redis ports from here (a, b, c, … in turn); UDP ports from `basePort + 1000`. Default: free ports. */
  readonly basePort?: number
  readonly stack?: 'strong' | 'weak'
  readonly order?: 'total' | 'semantic'
  readonly linearizableReads?: boolean
  /** `--encrypt`: the group's datagrams encrypted (AEAD). Default false. */
  readonly encrypt?: boolean
  /**
   * A key file every replica reads (`--key-file`: a key or a keyring of `<id>:<hex>` lines,
   * re-read on `SIGHUP`, see `ClusterReplica.signal`). Default: a fresh random key, given in
   * `CONSUL_GROUP_KEY`.
   */
  readonly keyFile?: string
  readonly password?: string
  /** Failure Detection's timeout (ms). Default 1,000. */
  readonly suspectAfterMs?: number
  /** Waves between coordinated checkpoints. Default 1,024. */
  readonly checkpointEveryWaves?: number
  /** How long a command waits for the group before `UNCERTAIN … timed out` (ms). Default 10,000. */
  readonly writeTimeoutMs?: number
  /** The folder for the replicas' storage; default a fresh temporary one, removed by `stop()`. */
  readonly dir?: string
  /** Longest wait for a replica to be ready (ms). Default 60,000. */
  readonly startTimeoutMs?: number
  /** Where the replicas' output goes: inherited (default) or dropped. */
  readonly output?: 'inherit' | 'ignore'
  readonly logLevel?: 'debug' | 'info' | 'warn' | 'error'
}

export interface ReplicaReport {
  readonly status: ReplicaStatus | null
  readonly dump: DirectoryDump | null
}

export interface ClusterReplica {
  readonly name: string
  /** Its Redis port. */
  readonly port: number
  readonly udpPort: number
  readonly dataDir: string
  /** Whether its process runs now (paused included). */
  readonly running: boolean
  readonly paused: boolean
  /** Whether its last start recovered the group from storage. */
  readonly restored: boolean
  /** Sends its process `signal` (e.g. `SIGHUP`: re-read the key file) and returns at once. */
  signal(signal: NodeJS.Signals): void
  /** Kills its process (default `SIGKILL`) and waits until it has exited. */
  kill(signal?: NodeJS.Signals): Promise<void>
  /** `SIGSTOP` (true) or `SIGCONT` (false). */
  pause(paused: boolean): void
  /**
   * Starts it again on the same storage and ports. Resolves once it is active — or, with
   * `{ wait: 'listening' }`, as soon as its Redis port answers (it may still be recovering).
   */
  start(options?: { readonly wait?: 'active' | 'listening' }): Promise<void>
  /** Its status and state digest, over IPC (rejects if it is not running or paused). */
  report(timeoutMs?: number): Promise<ReplicaReport>
}

export interface Cluster {
  readonly replicas: readonly ClusterReplica[]
  /** The group key (hex): what a further replica would need. */
  readonly key: string
  replica(name: string): ClusterReplica
  /** Every running, unpaused replica's report. */
  reports(): Promise<Record<string, ReplicaReport>>
  /** Stops every replica (SIGTERM, then SIGKILL after 5 s) and removes the folder it made. */
  stop(): Promise<void>
}

type Message = { type: string; [k: string]: unknown }

/** The CLI next to this module: the built one, or the source under tsx. */
function cliScript(): { path: string; execArgv: string[] } {
  const here = import.meta.url
  if (here.endsWith('.ts'))
    return {
      path: fileURLToPath(new URL('./cli.ts', here)),
      execArgv: ['--import', import.meta.resolve('tsx')],
    }
  return { path: fileURLToPath(new URL('./cli.js', here)), execArgv: [] }
}

async function portFree(port: number, kind: 'udp' | 'tcp'): Promise<boolean> {
  if (kind === 'udp') {
    const s = createSocket('udp4')
    return new Promise((resolve) => {
      s.once('error', () => resolve(false))
      s.bind(port, '127.0.0.1', () => s.close(() => resolve(true)))
    })
  }
  return new Promise((resolve) => {
    const t = createServer()
    t.once('error', () => resolve(false))
    t.listen(port, '127.0.0.1', () => t.close(() => resolve(true)))
  })
}

/** Ports free for both UDP and TCP on loopback right now (bound, then released). */
export async function freePorts(n: number): Promise<number[]> {
  const ports: number[] = []
  while (ports.length < n) {
    const udp = createSocket('udp4')
    const port = await new Promise<number>((resolve, reject) => {
      udp.once('error', reject)
      udp.bind(0, '127.0.0.1', () => resolve(udp.address().port))
    })
    const tcpFree = await portFree(port, 'tcp')
    udp.close()
    if (tcpFree && !ports.includes(port)) ports.push(port)
  }
  return ports
}

export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const count = options.replicas ?? 3
  if (!Number.isInteger(count) || count < 1 || count > 26)
    throw new RangeError(`replicas is 1 to 26, not ${count}`)
  const names = Array.from({ length: count }, (_, i) => String.fromCharCode(97 + i))
  let redisPorts: number[]
  let udpPorts: number[]
  if (options.basePort === undefined) {
    const ports = await freePorts(count * 2)
    redisPorts = ports.slice(0, count)
    udpPorts = ports.slice(count)
  } else {
    const base = options.basePort
    if (!Number.isInteger(base) || base < 1 || base + 1000 + count > 65535)
      throw new RangeError(`basePort ${base} leaves no room for ${count} replicas`)
    redisPorts = names.map((_, i) => base + i)
    udpPorts = names.map((_, i) => base + 1000 + i)
    for (const p of redisPorts)
      if (!(await portFree(p, 'tcp'))) throw new Error(`TCP port ${p} is taken`)
    for (const p of udpPorts)
      if (!(await portFree(p, 'udp'))) throw new Error(`UDP port ${p} is taken`)
  }
  const ownDir = options.dir === undefined
  const root = options.dir ?? mkdtempSync(join(tmpdir(), 'consul-directory-'))
  const key = randomBytes(32).toString('hex')
  const peers = names.map((n, i) => `${n}=127.0.0.1:${udpPorts[i]}`).join(',')
  const script = cliScript()
  const timeoutMs = options.startTimeoutMs ?? 60_000

  const replicas = names.map((name, i) => {
    const dataDir = join(root, name)
    mkdirSync(dataDir, { recursive: true })
    const port = redisPorts[i]!
    let child: ChildProcess | undefined
    let paused = false
    let restored = false
    let starts = 0
    let exited: Promise<void> = Promise.resolve()
    const waiting = new Map<string, (m: Message) => void>()
    const args = [
      'serve',
      '--self',
      name,
      '--peers',
      peers,
      '--port',
      `127.0.0.1:${port}`,
      '--data',
      dataDir,
      '--stack',
      options.stack ?? 'strong',
      '--order',
      options.order ?? 'total',
      '--suspect-after-ms',
      String(options.suspectAfterMs ?? 1_000),
      '--checkpoint-every-waves',
      String(options.checkpointEveryWaves ?? 1024),
      '--write-timeout-ms',
      String(options.writeTimeoutMs ?? 10_000),
      '--log-level',
      options.logLevel ?? 'error',
      ...(options.linearizableReads ? ['--linearizable-reads'] : []),
      ...(options.encrypt ? ['--encrypt'] : []),
      ...(options.keyFile === undefined ? [] : ['--key-file', options.keyFile]),
    ]
    const replica: ClusterReplica = {
      name,
      port,
      udpPort: udpPorts[i]!,
      dataDir,
      get running() {
        return child !== undefined
      },
      get paused() {
        return paused
      },
      get restored() {
        return restored
      },
      signal: (signal) => {
        if (child === undefined) throw new Error(`${name} is not running`)
        child.kill(signal)
      },
      kill: async (signal = 'SIGKILL') => {
        const c = child
        if (c === undefined) return
        if (paused && signal !== 'SIGKILL') c.kill('SIGCONT')
        c.kill(signal)
        await exited
      },
      pause: (p) => {
        if (child === undefined) throw new Error(`${name} is not running`)
        child.kill(p ? 'SIGSTOP' : 'SIGCONT')
        paused = p
      },
      start: (startOptions = {}) => {
        if (child !== undefined) return Promise.reject(new Error(`${name} is running`))
        // The first start bootstraps the group; later ones recover from the data directory,
        // or join and fetch the state if it was wiped.
        const init = starts++ === 0 ? '--bootstrap' : '--join'
        const c = fork(script.path, [...args, init], {
          execArgv: script.execArgv,
          env: {
            ...process.env,
            CONSUL_GROUP_KEY: key,
            ...(options.password === undefined
              ? {}
              : { CONSUL_DIRECTORY_PASSWORD: options.password }),
          },
          stdio: ['ignore', options.output ?? 'inherit', options.output ?? 'inherit', 'ipc'],
        })
        child = c
        paused = false
        exited = new Promise<void>((resolve) =>
          c.once('exit', () => {
            if (child === c) child = undefined
            paused = false
            for (const w of waiting.values()) w({ type: 'exited' })
            waiting.clear()
            resolve()
          }),
        )
        c.on('error', () => {}) // a send racing a kill
        c.on('message', (raw) => {
          const m = raw as Message
          const kind = m.type === 'failed' ? 'ready' : m.type
          const w = waiting.get(kind)
          waiting.delete(kind)
          w?.(m)
        })
        return new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => {
            waiting.delete('ready')
            reject(new Error(`${name} was not ready within ${timeoutMs} ms`))
          }, timeoutMs)
          const done = (error?: Error) => {
            clearTimeout(timer)
            if (error === undefined) resolve()
            else reject(error)
          }
          waiting.set('ready', (m) => {
            if (m.type === 'ready') {
              restored = m.restored === true
              done()
            } else done(new Error(`${name} ${m.type}: ${String(m.message ?? '')}`))
          })
          if (startOptions.wait === 'listening') {
            // Connect, never bind: a probe that bound the port could take it from the replica.
            const probe = () => {
              if (child !== c) return
              const socket = connect({ port, host: '127.0.0.1' })
              socket.once('connect', () => {
                socket.destroy()
                waiting.delete('ready')
                done()
              })
              socket.once('error', () => {
                socket.destroy()
                setTimeout(probe, 25)
              })
            }
            probe()
          }
        })
      },
      report: (reportTimeoutMs = 5_000) => {
        const c = child
        if (c === undefined) return Promise.reject(new Error(`${name} is not running`))
        if (paused) return Promise.reject(new Error(`${name} is paused`))
        return new Promise<ReplicaReport>((resolve, reject) => {
          const timer = setTimeout(() => {
            waiting.delete('state')
            reject(new Error(`${name} did not answer within ${reportTimeoutMs} ms`))
          }, reportTimeoutMs)
          waiting.set('state', (m) => {
            clearTimeout(timer)
            if (m.type === 'state')
              resolve({
                status: m.status as ReplicaStatus | null,
                dump: m.dump as DirectoryDump | null,
              })
            else reject(new Error(`${name} exited`))
          })
          c.send({ type: 'state' })
        })
      },
    }
    return replica
  })

  const stop = async () => {
    await Promise.all(
      replicas.map(async (r) => {
        if (!r.running) return
        const timer = setTimeout(() => void r.kill('SIGKILL'), 5_000)
        await r.kill('SIGTERM')
        clearTimeout(timer)
      }),
    )
    if (ownDir) rmSync(root, { recursive: true, force: true })
  }
  try {
    await Promise.all(replicas.map((r) => r.start()))
  } catch (error) {
    await stop()
    throw error
  }
  const byName = (name: string) => {
    const r = replicas.find((x) => x.name === name)
    if (r === undefined) throw new RangeError(`no replica ${name} (${names.join(', ')})`)
    return r
  }
  return {
    replicas,
    key,
    replica: byName,
    reports: async () => {
      const out: Record<string, ReplicaReport> = {}
      await Promise.all(
        replicas
          .filter((r) => r.running && !r.paused)
          .map(async (r) => {
            try {
              out[r.name] = await r.report()
            } catch {
              // exited meanwhile
            }
          }),
      )
      return out
    },
    stop,
  }
}
