/**
 * State transfer in the simulator, over the whole strong stack: a replica restarted with every
 * checkpoint of its own unreadable, its log pruned, fetches a checkpoint from a live member —
 * under loss, with the donor crashing mid-way, with itself crashing mid-way (it resumes) — and
 * restarts from it into the same state as the others.
 */

import { crc32 as zlibCrc32 } from 'node:zlib'
import { dispatcher } from '@consul/dispatcher'
import { divider } from '@consul/divider'
import { failureDetection } from '@consul/failure-detection'
import { membership } from '@consul/membership'
import { totalOrder } from '@consul/order-total'
import { psync } from '@consul/psync'
import { recoverReady } from '@consul/restart'
import { dist, Simulation } from '@consul/sim'
import { DISPATCHER, PSYNC, RECOVERY, stack, XKernelError } from '@consul/xkernel'
import { describe, expect, it } from 'vitest'
import {
  crc32,
  decodeManifest,
  encodeCheckpoint,
  encodeManifest,
  manifestOf,
} from '../src/codec.js'
import { damageCheckpoints, type RecoveryOptions, recovery } from '../src/index.js'
import {
  decodeMarker,
  decodeTransfer,
  encodeAsk,
  encodeGet,
  encodeMarker,
  encodePart,
} from '../src/transfer.js'
import { kv } from './fixtures/kv.js'

const MEMBERS = ['n1', 'n2', 'n3']

/** The whole strong stack over `kv`, with these Recovery options. */
const strong = (options: RecoveryOptions) =>
  stack()
    .use(psync({ logEveryMs: 1 }))
    .use(divider())
    .use(failureDetection({ suspectAfterMs: 400 }))
    .use(membership())
    .use(totalOrder({ ackDelayMs: 1 }))
    .use(dispatcher({ machine: kv }))
    .use(recovery(options))

async function cluster(
  seed: number,
  options: { loss?: number; window?: number; recoverReady?: boolean } = {},
) {
  const sim = new Simulation({
    seed,
    nodes: MEMBERS,
    stack: strong({
      checkpointEveryWaves: 16,
      floorEveryMs: 20,
      partBytes: 1_024,
      transferWindow: options.window ?? 4,
      transferRetryMs: 60,
      transferDonorTimeoutMs: 300,
    }),
    network: { delay: dist.uniform(0.5, 2), loss: options.loss ?? 0 },
    // A restarted replica: its groups back, restarted from a fetched checkpoint if need be
    // (or, without recoverReady, as the simulator does by default: recovered, nothing more).
    onRestart: async (host) => {
      if (options.recoverReady === false) await host.recoverGroups()
      else void recoverReady(host, [{ port: 'g', members: MEMBERS }]).catch(() => {})
    },
  })
  await sim.start()
  await sim.openAll({ port: 'g' })
  const group = (n: string) => sim.host(n).group('g')!
  const client = (n: string) => kv.client(group(n).get(DISPATCHER))
  const rec = (n: string) => group(n).get(RECOVERY)
  /** Between the close and the reopen of a restart in place there is no group. */
  const recState = (n: string) => sim.host(n).group('g')?.get(RECOVERY).state()
  const progress = (n: string) => sim.host(n).group('g')?.get(RECOVERY).transfer()
  const stats = (n: string) => sim.host(n).stats().recovery ?? {}
  /** Every live replica submits every `every` ms until `until`; a state of ~3,000 keys. */
  const load = (from: number, until: number, every = 2) => {
    let k = 0
    for (let t = from; t < until; t += every)
      for (const n of MEMBERS)
        sim.at(t, () => {
          if (!sim.isUp(n) || recState(n) !== 'active') return
          client(n)
            .submit('add', { key: `key-${k++ % 3_000}-of-a-state-that-needs-parts`, n: 1 })
            .catch(() => {})
        })
  }
  /** Breaks every checkpoint manifest of `node` (its parts stay, useless without it). */
  const breakCheckpoints = (node: string) => damageCheckpoints(sim.disk(node), 'g')
  const until = async (cond: () => boolean, limit: number) => {
    while (!cond() && sim.now < limit) await sim.run({ until: sim.now + 5 })
    return cond()
  }
  return { sim, group, client, rec, recState, progress, stats, load, breakCheckpoints, until }
}

/** Crash n3 after a loaded run, break its checkpoints, start it again. */
async function crashAndBreak(c: Awaited<ReturnType<typeof cluster>>, at = 700) {
  c.load(5, 2_400)
  await c.sim.run({ until: at })
  expect(c.group('n3').get(PSYNC).waveFloor()).toBeGreaterThan(0)
  c.sim.crash('n3')
  expect(c.breakCheckpoints('n3')).toBe(2)
  await c.sim.restart('n3')
  // Psync's log starts above wave 0 and no checkpoint is readable: a transfer.
  expect(c.rec('n3').state()).toBe('transferring')
}

/** Runs until n3 has received `parts` parts of its transfer, not all: its progress then. */
async function midTransfer(c: Awaited<ReturnType<typeof cluster>>, parts: number) {
  expect(await c.until(() => (c.progress('n3')?.partsReceived ?? 0) >= parts, 2_000)).toBe(true)
  const progress = c.rec('n3').transfer()!
  expect(progress.partsReceived).toBeLessThan(progress.parts)
  return progress
}

describe('state transfer', () => {
  it('a replica whose checkpoints are all unreadable and whose log is pruned fetches one from a live member under 10% loss, restarts from it and ends in the same state', async () => {
    const c = await cluster(11, { loss: 0.1 })
    await crashAndBreak(c)
    expect(await c.until(() => c.recState('n3') === 'active', 6_000)).toBe(true)
    await c.sim.run({ until: 3_200 })
    const st = c.stats('n3')
    expect(st.transfersCompleted).toBe(1)
    expect(st.transferPartsReceived).toBeGreaterThanOrEqual(10)
    // Lost parts were asked for again.
    expect(st.transferPartsRetried).toBeGreaterThan(0)
    // While fetching it acknowledged the others' commands, so the waves went on without it waiting.
    expect(st.transferWaveAcks).toBeGreaterThan(0)
    expect(c.rec('n3').restoredFrom()).toMatchObject({ skipped: 0 })
    const s1 = c.client('n1').state()
    expect(Object.keys(s1).length).toBeGreaterThan(500)
    expect(c.client('n3').state()).toEqual(s1)
    expect(c.client('n2').state()).toEqual(s1)
    const served =
      (c.stats('n1').transferPartsServed ?? 0) + (c.stats('n2').transferPartsServed ?? 0)
    expect(served).toBeGreaterThanOrEqual(st.transferPartsReceived!)
  })

  it('the donor crashing mid-transfer: the fetcher goes on with another member (its own parts kept when the record is the same, else fetched anew)', async () => {
    const c = await cluster(12)
    await crashAndBreak(c)
    const first = await midTransfer(c, 3)
    c.sim.crash(first.donor)
    const other = MEMBERS.find((m) => m !== 'n3' && m !== first.donor)!
    expect(await c.until(() => c.recState('n3') === 'active', 6_000)).toBe(true)
    await c.sim.run({ until: 3_200 })
    expect(c.stats('n3').transferDonorChanges).toBeGreaterThanOrEqual(1)
    expect(c.rec('n3').transfer()).toBeUndefined() // a new incarnation: restored, not fetching
    expect(c.client('n3').state()).toEqual(c.client(other).state())
  })

  it('the fetcher crashing mid-transfer resumes with the parts it had written', async () => {
    const c = await cluster(13)
    await crashAndBreak(c)
    const before = await midTransfer(c, 6)
    c.sim.crash('n3')
    await c.sim.run({ until: c.sim.now + 20 })
    await c.sim.restart('n3')
    expect(c.rec('n3').state()).toBe('transferring')
    // What was synced before the crash is kept; only the rest travels again.
    const resumed = c.stats('n3').transferPartsResumed ?? 0
    expect(resumed).toBeGreaterThan(0)
    expect(await c.until(() => c.recState('n3') === 'active', 6_000)).toBe(true)
    // The same record of the same donor (it kept it pinned): only the missing parts came.
    expect(resumed + c.stats('n3').transferPartsReceived!).toBe(before.parts)
    await c.sim.run({ until: 3_200 })
    expect(c.client('n3').state()).toEqual(c.client('n1').state())
    expect(c.sim.disk('n3').get('recovery/g/transfer')).toBeUndefined()
  })

  it('a part that fails its checksum is refused, counted and asked for again; nothing wrong is written', async () => {
    const c = await cluster(14, { window: 1 })
    await crashAndBreak(c)
    expect(await c.until(() => (c.progress('n3')?.partsReceived ?? 0) >= 1, 2_000)).toBe(true)
    const donor = c.rec('n3').transfer()!.donor
    // The donor's manifest generation, from its own storage.
    const head = c.sim.disk(donor).get('recovery/g/head')!
    const generation = new DataView(head.buffer, head.byteOffset, 8).getFloat64(0)
    for (let i = 0; i < 8; i++)
      c.group(donor)
        .get(PSYNC)
        .sendDirect('n3', encodePart(generation, i, new Uint8Array(1_024)))
    expect(await c.until(() => c.recState('n3') === 'active', 6_000)).toBe(true)
    await c.sim.run({ until: 3_200 })
    expect(c.client('n3').state()).toEqual(c.client('n1').state())
    const st = c.stats('n3')
    expect(
      (st.transferPartsCorrupt ?? 0) +
        (st.transferPartsStale ?? 0) +
        (st.transferPartsDuplicate ?? 0),
    ).toBeGreaterThan(0)
  })

  it('without recoverReady, ready() rejects with RESTART_REQUIRED once the fetched checkpoint is durable; group.restart() brings the replica back from it', async () => {
    const c = await cluster(15, { recoverReady: false })
    c.load(5, 2_400)
    await c.sim.run({ until: 700 })
    c.sim.crash('n3')
    c.breakCheckpoints('n3')
    const host = await c.sim.restart('n3')
    const g = host.group('g')
    let rejected: unknown
    g!
      .get(RECOVERY)
      .ready()
      .catch((e: unknown) => (rejected = e))
    expect(await c.until(() => rejected !== undefined, 4_000)).toBe(true)
    expect(XKernelError.isInstance(rejected) && rejected.code).toBe('RESTART_REQUIRED')
    expect(g!.get(RECOVERY).transfer()).toMatchObject({ complete: true })
    let again: typeof g
    c.sim.after(1, async () => {
      again = await g!.restart()
    })
    expect(await c.until(() => again !== undefined, 5_000)).toBe(true)
    expect(again!.get(RECOVERY).restoredFrom()!.generation).toBeGreaterThan(0)
    expect(await c.until(() => again!.get(RECOVERY).state() === 'active', 5_000)).toBe(true)
    await c.sim.run({ until: 3_200 })
    expect(c.client('n3').state()).toEqual(c.client('n1').state())
    await expect(g!.restart()).rejects.toThrow(/closed/)
  })
})

describe('no donor', () => {
  it('a lone member with no usable checkpoint and a pruned log cannot rebuild its state: ready() rejects RECOVERY_FAILED, nothing is guessed', async () => {
    const sim = new Simulation({
      seed: 21,
      nodes: ['n1'],
      stack: strong({ checkpointEveryWaves: 4, floorEveryMs: 20 }),
    })
    await sim.start()
    await sim.openAll({ port: 'g' })
    const group = () => sim.host('n1').group('g')!
    for (let t = 5; t < 600; t += 2)
      sim.at(t, () => {
        kv.client(group().get(DISPATCHER))
          .submit('add', { key: `k${t % 50}`, n: 1 })
          .catch(() => {})
      })
    await sim.run({ until: 700 })
    expect(group().get(PSYNC).waveFloor()).toBeGreaterThan(0)
    sim.crash('n1')
    expect(damageCheckpoints(sim.disk('n1'), 'g')).toBe(2)
    // Damaged twice, still damaged (a byte flipped twice would be whole again).
    expect(damageCheckpoints(sim.disk('n1'), 'g')).toBe(2)
    await sim.restart('n1')
    let error: unknown
    group()
      .get(RECOVERY)
      .ready()
      .catch((e: unknown) => (error = e))
    await sim.run({ until: 900 })
    expect(XKernelError.isInstance(error) && error.code).toBe('RECOVERY_FAILED')
    expect(String(error)).toMatch(/no other member to fetch one from/)
    expect(group().get(RECOVERY).state()).toBe('failed')
  })
})

describe('the transfer formats', () => {
  const record = encodeCheckpoint({
    generation: 7,
    wave: 40,
    states: [{ protocol: 'dispatcher', state: new Uint8Array(5_000).map((_, i) => i) }],
  })

  it('a manifest describes the parts; any flipped bit is refused', () => {
    const { manifest, parts } = manifestOf(7, 40, record, 1_024)
    expect(parts).toHaveLength(Math.ceil(record.length / 1_024))
    expect(manifest.partCrcs).toEqual(parts.map((p) => crc32(p)))
    const bytes = encodeManifest(manifest)
    expect(decodeManifest(bytes)).toEqual(manifest)
    for (let i = 0; i < bytes.length; i++) {
      const broken = bytes.slice()
      broken[i] = broken[i]! ^ 0x04
      expect(() => decodeManifest(broken)).toThrow(/not a checkpoint manifest/)
    }
    expect(() => decodeManifest(bytes.subarray(0, 30))).toThrow(/too short/)
  })

  it('a marker round-trips and is refused when damaged; transfer frames are decoded with bounds checked', () => {
    const { manifest } = manifestOf(7, 40, record, 1_024)
    const marker = { generation: 3, donor: 'n2', manifest }
    const bytes = encodeMarker(marker)
    expect(decodeMarker(bytes)).toEqual(marker)
    const broken = bytes.slice()
    broken[13] = broken[13]! ^ 1
    expect(() => decodeMarker(broken)).toThrow(/transfer marker/)
    expect(decodeTransfer(encodeAsk(12, 4))).toEqual({ kind: 1, minWave: 12, resume: 4 })
    expect(decodeTransfer(encodeGet(5, 9, 3))).toEqual({
      kind: 4,
      generation: 5,
      first: 9,
      count: 3,
    })
    // Another protocol's direct datagram: not ours, not an error.
    expect(decodeTransfer(new Uint8Array([1, 2, 3]))).toBeUndefined()
    expect(() => decodeTransfer(new Uint8Array([0x52, 9]))).toThrow(/unknown transfer frame/)
    expect(() => decodeTransfer(encodeAsk(12).subarray(0, 6))).toThrow(/transfer frame/)
    expect(() => decodeTransfer(encodeGet(0, 1, 1))).toThrow(/generation/)
  })

  it('the transfer options are checked, naming the option', () => {
    expect(() => recovery({ partBytes: 10 })).toThrow(/partBytes/)
    expect(() => recovery({ transferWindow: 0 })).toThrow(/transferWindow/)
    expect(() => recovery({ transferBytesPerSecond: -1 })).toThrow(/transferBytesPerSecond/)
    expect(() => recovery({ transferRetryMs: 0 })).toThrow(/transferRetryMs/)
    expect(() => recovery({ transferDonorTimeoutMs: Number.NaN })).toThrow(/transferDonorTimeoutMs/)
    // The checksum may be a faster implementation, but only of the standard CRC-32.
    expect(() => recovery({ crc32: zlibCrc32 })).not.toThrow()
    expect(() => recovery({ crc32: (b: Uint8Array) => b.length })).toThrow(/CRC-32 \(IEEE\)/)
    expect(() => recovery({ crc32: 'crc' as never })).toThrow(/crc32/)
    expect(() =>
      recovery({
        crc32: () => {
          throw new Error('no')
        },
      }),
    ).toThrow(/crc32/)
    expect(zlibCrc32(record)).toBe(crc32(record))
  })
})
