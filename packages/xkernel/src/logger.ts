/**
 * Structured logging: every record has a level, a message and fields, plus the host,
 * protocol and group it came from, and the time on the host's clock (virtual time in the
 * simulator). Important transitions are logged with a reason (why a node was suspected, why
 * a view changed); malformed input is logged at debug level where it is counted.
 */
import { jsonLineSink } from './adapters/json-line-sink.js'

export type LogLevel = 'debug' | 'info' | 'warn' | 'error'
export type LogThreshold = LogLevel | 'silent'

const rank: Record<LogThreshold, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 }

export type LogFields = Readonly<Record<string, unknown>>

export interface LogRecord {
  readonly time: number
  readonly level: LogLevel
  readonly msg: string
  readonly host?: string
  readonly protocol?: string
  readonly group?: string
  readonly fields?: LogFields
}

export type LogSink = (record: LogRecord) => void

export interface Logger {
  debug(msg: string, fields?: LogFields): void
  info(msg: string, fields?: LogFields): void
  warn(msg: string, fields?: LogFields): void
  error(msg: string, fields?: LogFields): void
  enabled(level: LogLevel): boolean
  /** A logger that adds these bindings to every record. */
  child(bindings: { host?: string; protocol?: string; group?: string }): Logger
}

export interface LoggerOptions {
  readonly level?: LogThreshold
  readonly sink?: LogSink
  readonly now?: () => number
}

type Bindings = { host?: string; protocol?: string; group?: string }

/** Collects records in an array (tests, the simulator's failure reports). */
export function memorySink(): LogSink & { records: LogRecord[] } {
  const records: LogRecord[] = []
  const sink = ((record: LogRecord) => {
    records.push(record)
  }) as LogSink & { records: LogRecord[] }
  sink.records = records
  return sink
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? 'warn'
  // hasOwn: 'constructor' or 'toString' must not pass as a level.
  if (!Object.hasOwn(rank, level)) throw new RangeError(`unknown log level ${String(level)}`)
  const threshold = rank[level]
  const sink = options.sink ?? jsonLineSink
  const now = options.now ?? (() => 0)
  const make = (bindings: Bindings): Logger => {
    const write = (level: LogLevel, msg: string, fields?: LogFields) => {
      if (rank[level] < threshold) return
      sink({ time: now(), level, msg, ...bindings, ...(fields === undefined ? {} : { fields }) })
    }
    return {
      debug: (msg, fields) => write('debug', msg, fields),
      info: (msg, fields) => write('info', msg, fields),
      warn: (msg, fields) => write('warn', msg, fields),
      error: (msg, fields) => write('error', msg, fields),
      enabled: (level) => rank[level] >= threshold,
      child: (more) => make({ ...bindings, ...more }),
    }
  }
  return make({})
}
