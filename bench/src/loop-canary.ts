/**
 * Child process of the Order benchmark (order.ts): does nothing but measure how late its own
 * event loop runs (`monitorEventLoopDelay`, 1 ms resolution) while the replicas work, so a
 * run shows what the machine alone does to a process's latency. `start` resets the
 * histogram; `report` answers with the delay beyond the resolution, in ms.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks'

export type CanaryMessage =
  | { readonly type: 'start' }
  | { readonly type: 'report' }
  | { readonly type: 'exit' }

/** The answer to `report`: how late the loop ran beyond the resolution, in ms. */
export interface CanaryReport {
  readonly type: 'report'
  readonly p50: number
  readonly p99: number
  readonly max: number
}

const RESOLUTION_MS = 1
const histogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS })
histogram.enable()
const late = (ns: number) => Math.max(0, ns / 1e6 - RESOLUTION_MS)

process.on('message', (message: CanaryMessage) => {
  if (message.type === 'start') {
    histogram.reset()
    process.send?.({ type: 'started' })
  } else if (message.type === 'report') {
    const report: CanaryReport = {
      type: 'report',
      p50: late(histogram.percentile(50)),
      p99: late(histogram.percentile(99)),
      max: late(histogram.max),
    }
    process.send?.(report)
  } else if (message.type === 'exit') {
    histogram.disable()
    process.exit(0)
  }
})
process.send?.({ type: 'ready' })
