/** The weak stack: no agreement package at all; each replica masks out whom it suspects. */
import { dispatcher } from '@consul/dispatcher'
import { divider } from '@consul/divider'
import { failureDetection } from '@consul/failure-detection'
import { semanticOrder } from '@consul/order-semantic'
import { totalOrder } from '@consul/order-total'
import { psync } from '@consul/psync'
import { restart } from '@consul/restart'
import { stack } from '@consul/xkernel'
import { directoryKeys, directoryMachine, keyedDirectoryMachine } from '../machine.js'
import type { StackOptions } from './options.js'

export const weakStack = (o: StackOptions) =>
  stack()
    .use(psync({ logEveryMs: 0, retainWaves: 64 }))
    .use(divider())
    .use(failureDetection({ suspectAfterMs: o.suspectAfterMs }))
    .use(
      o.order === 'total'
        ? totalOrder({ ackDelayMs: 0 })
        : semanticOrder({ keysOf: directoryKeys, ackDelayMs: 0 }),
    )
    .use(dispatcher({ machine: o.order === 'total' ? directoryMachine : keyedDirectoryMachine }))
    .use(restart())
