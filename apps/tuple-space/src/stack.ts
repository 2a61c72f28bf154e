/**
 * The stack every replica runs — the strong configuration (DESIGN §5) with semantic order:
 * Psync, the Divider, Failure Detection, Membership, `@consul/order-semantic` with the tuple
 * space's classes (`out` rank 0, the rest rank 1), the Dispatcher with the tuple-space
 * machine, Recovery and Restart.
 */
import { dispatcher } from '@consul/dispatcher'
import { divider } from '@consul/divider'
import { failureDetection } from '@consul/failure-detection'
import { membership } from '@consul/membership'
import { semanticOrder } from '@consul/order-semantic'
import { psync } from '@consul/psync'
import { recovery } from '@consul/recovery'
import { restart } from '@consul/restart'
import { stack } from '@consul/xkernel'
import { tupleSpaceClasses, tupleSpaceMachine } from './machine.js'

export interface TupleSpaceStackOptions {
  /** Failure Detection's timeout (ms). Default 1,000. */
  readonly suspectAfterMs?: number
  /** Waves between two coordinated checkpoints. Default 64. */
  readonly checkpointEveryWaves?: number
  /** A CRC-32 for Recovery's records (on Node: `zlib.crc32`). Default Recovery's own. */
  readonly crc32?: (bytes: Uint8Array) => number
  /** Psync's log sync interval (ms). Default 2. */
  readonly logEveryMs?: number
}

export function tupleSpaceStack(options: TupleSpaceStackOptions = {}) {
  return stack()
    .use(psync({ logEveryMs: options.logEveryMs ?? 2 }))
    .use(divider())
    .use(failureDetection({ suspectAfterMs: options.suspectAfterMs ?? 1_000 }))
    .use(membership())
    .use(semanticOrder({ classOf: tupleSpaceClasses, ackDelayMs: 1 }))
    .use(dispatcher({ machine: tupleSpaceMachine }))
    .use(
      recovery({
        checkpointEveryWaves: options.checkpointEveryWaves ?? 64,
        ...(options.crc32 === undefined ? {} : { crc32: options.crc32 }),
      }),
    )
    .use(restart())
}
