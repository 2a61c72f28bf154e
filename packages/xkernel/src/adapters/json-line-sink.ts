/**
 * The logger's default sink: one JSON line per record on the process's stderr. It lives
 * under `adapters/` because it writes to the real process; everything else in the logger
 * is pure and runs unchanged in the simulator.
 */
import type { LogSink } from '../logger.js'

/** One JSON line per record on stderr. */
export const jsonLineSink: LogSink = (record) => {
  process.stderr.write(`${JSON.stringify(record)}\n`)
}
