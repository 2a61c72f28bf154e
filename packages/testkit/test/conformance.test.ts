import { Simulation } from '@consul/sim'
import { memoryStorage, type StableStorage, stack } from '@consul/xkernel'
import { simTransportHarness } from '../src/index.js'
import { storageSuite } from '../src/storage.js'
import { transportSuite } from '../src/transport.js'

storageSuite({
  name: 'xkernel MemoryStorage',
  create: () => memoryStorage(),
  reopen: async (s) => {
    await s.close()
    return (s as ReturnType<typeof memoryStorage>).reopen()
  },
  crash: (s) => {
    ;(s as ReturnType<typeof memoryStorage>).crash()
    return s
  },
})

// The simulator's disk: a MemoryStorage whose syncs take virtual time, so the suite drives
// the simulation while it waits.
const sims = new Map<StableStorage, Simulation>()
storageSuite({
  name: '@consul/sim disk',
  create: async () => {
    const sim = new Simulation({ seed: 3, nodes: 1, stack: stack() })
    await sim.start()
    const disk = sim.disk('n1')
    const sync = disk.sync.bind(disk)
    disk.sync = () => {
      const done = sync()
      void sim.run({ for: 10 })
      return done
    }
    sims.set(disk, sim)
    return disk
  },
  crash: (s) => {
    sims.get(s)!.crash('n1')
    return s
  },
})

transportSuite({
  name: '@consul/sim network',
  integrity: false,
  create: (ids) => simTransportHarness(ids),
})
