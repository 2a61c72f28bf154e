/**
 * A cluster launcher for tests and examples: N replica processes (`consul-tuple-space`) on
 * loopback, on free UDP and TCP ports, one LMDB directory each under a temporary folder, one
 * random group key. A replica can be killed (`SIGKILL` by default) and started again on the
 * same storage and ports.
 *
 * ```ts
 * import { startCluster } from '@consul/tuple-space/cluster'
 * const cluster = await startCluster({ replicas: 3 })
 * const a = await cluster.connect('a')
 * await a.out(['hello', 1])
 * await cluster.stop()
 * ```
 */
import { type ChildProcess, fork } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createSocket } from 'node:dgram'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { connect, type TupleSpace } from './client.js'
import type { ReplicaDump } from './run.js'

export interface ClusterOptions {
  /** How many replicas (named a, b, c, …). Default 3. */
  readonly replicas?: number
  /** Failure Detection's timeout (ms). Default 1,000. */
  readonly suspectAfterMs?: number
  readonly checkpointEveryWaves?: number
  /** The folder for the replicas' storage; default a fresh temporary one, removed by `stop()`. */
  readonly dir?: string
  /** Longest wait for a replica to be ready (ms). Default 60,000. */
  readonly startTimeoutMs?: number
  /** Where the replicas' output goes: inherited (default) or dropped. */
  readonly output?: 'inherit' | 'ignore'
  readonly logLevel?: 'debug' | 'info' | 'warn' | 'error'
  /** `--encrypt`: the group's datagrams encrypted (AEAD). Default false. */
  readonly encrypt?: boolean
}

export interface ReplicaState {
  readonly recovery: string
  /** Membership's view, `null` while the group is re-created. */
  readonly view: { id: number; configuration: number; members: string[] } | null
  readonly dump: ReplicaDump | null
}

export interface ClusterReplica {
  readonly name: string
  readonly tcpPort: number
  readonly udpPort: number
  readonly dataDir: string
  /** Whether its process runs now. */
  readonly running: boolean
  /** The session of its current process (a new one after every restart). */
  readonly session: string | undefined
  /** Whether its last start recovered the group from storage. */
  readonly restored: boolean
  /** Kills its process (default `SIGKILL`) and waits until it has exited. */
  kill(signal?: NodeJS.Signals): Promise<void>
  /** Starts it again on the same storage and ports; resolves once it is ready. */
  start(): Promise<void>
  /** Its replicated state and recovery state, over IPC. */
  state(): Promise<ReplicaState>
}

export interface Cluster {
  readonly replicas: readonly ClusterReplica[]
  replica(name: string): ClusterReplica
  /** A client connected to a replica. */
  connect(name: string): Promise<TupleSpace>
  /** Every running replica's state. */
  states(): Promise<Record<string, ReplicaState>>
  /** Stops every replica (SIGTERM, then SIGKILL after 5 s) and removes the folder it made. */
  stop(): Promise<void>
}

type Message = { type: string; [k: string]: unknown }

/** The server script next to this module: the built one, or the source under tsx. */
function serverScript(): { path: string; execArgv: string[] } {
  const here = import.meta.url
  if (here.endsWith('.ts'))
    return {
      path: fileURLToPath(new URL('./server.ts', here)),
      execArgv: ['--import', import.meta.resolve('tsx')],
    }
  return { path: fileURLToPath(new URL('./server.js', here)), execArgv: [] }
}

/** Ports free for both UDP and TCP on loopback right now (bound, then released). */
async function freePorts(n: number): Promise<number[]> {
  const ports: number[] = []
  while (ports.length < n) {
    const udp = createSocket('udp4')
    const port = await new Promise<number>((resolve, reject) => {
      udp.once('error', reject)
      udp.bind(0, '127.0.0.1', () => resolve(udp.address().port))
    })
    const tcpFree = await new Promise<boolean>((resolve) => {
      const tcp = createServer()
      tcp.once('error', () => resolve(false))
      tcp.listen(port, '127.0.0.1', () => tcp.close(() => resolve(true)))
    })
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
  const ports = await freePorts(count * 2)
  const ownDir = options.dir === undefined
  const root = options.dir ?? mkdtempSync(join(tmpdir(), 'consul-tuple-space-'))
  const key = randomBytes(32).toString('hex')
  const peers = names.map((n, i) => `${n}=127.0.0.1:${ports[i]}`).join(',')
  const script = serverScript()
  const timeoutMs = options.startTimeoutMs ?? 60_000

  const replicas = names.map((name, i) => {
    const dataDir = join(root, name)
    mkdirSync(dataDir, { recursive: true })
    const tcpPort = ports[count + i]!
    let child: ChildProcess | undefined
    let session: string | undefined
    let restored = false
    let exited: Promise<void> = Promise.resolve()
    const waiting = new Map<string, (m: Message) => void>()
    const replica: ClusterReplica = {
      name,
      tcpPort,
      udpPort: ports[i]!,
      dataDir,
      get running() {
        return child !== undefined
      },
      get session() {
        return session
      },
      get restored() {
        return restored
      },
      kill: async (signal = 'SIGKILL') => {
        const c = child
        if (c === undefined) return
        c.kill(signal)
        await exited
      },
      start: () => {
        if (child !== undefined) return Promise.reject(new Error(`${name} is running`))
        const c = fork(
          script.path,
          [
            '--self',
            name,
            '--peers',
            peers,
            '--listen',
            `127.0.0.1:${tcpPort}`,
            '--data',
            dataDir,
            '--suspect-after-ms',
            String(options.suspectAfterMs ?? 1_000),
            '--checkpoint-every-waves',
            String(options.checkpointEveryWaves ?? 64),
            '--log-level',
            options.logLevel ?? 'error',
            ...(options.encrypt ? ['--encrypt'] : []),
          ],
          {
            execArgv: script.execArgv,
            env: { ...process.env, CONSUL_GROUP_KEY: key },
            stdio: ['ignore', options.output ?? 'inherit', options.output ?? 'inherit', 'ipc'],
          },
        )
        child = c
        session = undefined
        exited = new Promise<void>((resolve) =>
          c.once('exit', () => {
            if (child === c) child = undefined
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
          waiting.set('ready', (m) => {
            clearTimeout(timer)
            if (m.type === 'ready') {
              session = m.session as string
              restored = m.restored === true
              resolve()
            } else reject(new Error(`${name} ${m.type}: ${String(m.message ?? '')}`))
          })
        })
      },
      state: () => {
        const c = child
        if (c === undefined) return Promise.reject(new Error(`${name} is not running`))
        return new Promise<ReplicaState>((resolve, reject) => {
          waiting.set('state', (m) =>
            m.type === 'state'
              ? resolve({
                  recovery: m.recovery as string,
                  view: m.view as ReplicaState['view'],
                  dump: m.dump as ReplicaDump | null,
                })
              : reject(new Error(`${name} exited`)),
          )
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
    replica: byName,
    connect: (name) => connect({ port: byName(name).tcpPort }),
    states: async () => {
      const out: Record<string, ReplicaState> = {}
      for (const r of replicas) if (r.running) out[r.name] = await r.state()
      return out
    },
    stop,
  }
}
