/**
 * State transfer: a member with no usable checkpoint of its own, whose log no longer starts
 * at wave 0, fetches one from a live member — the **donor** — over Psync's direct datagrams
 * (outside the conversation: nothing of it enters the graph or the log).
 *
 *   ASK   "R" 1 · minWave f64 · resume f64         fetcher → donor: your newest checkpoint
 *                                                  (or generation `resume`, if you still have it)?
 *   OFFER "R" 2 · manifest                         donor → fetcher: its manifest
 *   NONE  "R" 3                                    donor → fetcher: none to give (or busy)
 *   GET   "R" 4 · generation f64 · first u32 · count u16      fetcher → donor: these parts
 *   PART  "R" 5 · generation f64 · index u32 · bytes          donor → fetcher: one part
 *   GONE  "R" 6 · generation f64                   donor → fetcher: that record is deleted
 *
 * The fetcher drives everything (the donor keeps no state per fetcher but a pin that stops it
 * deleting the record while it is being fetched): at most `transferWindow` parts in flight,
 * paced to `transferBytesPerSecond` when set, each part checked against the manifest's CRC and
 * written to storage as it comes (the record is never whole in memory while it travels), a
 * part not back within `transferRetryMs` asked for again, and a donor silent for
 * `transferDonorTimeoutMs` replaced by the next member of the view. A marker in storage names
 * the donor and its manifest, so a fetcher that crashes mid-way resumes with the parts it has.
 * When every part is in, the manifest goes to storage with the head in one batch: the fetched
 * checkpoint is then this member's newest, and the group restarts from it — reading it as any
 * record is read, each part against its CRC and the whole against the record's own CRC.
 *
 * Invariants: a part is written only if it matches the manifest's CRC for its index (the
 * manifest carries its own CRC); the manifest is written only after every part is in; parts of
 * one donor's record are never mixed with another's (a different manifest discards them).
 */
import {
  DecodeError,
  type NodeId,
  type PsyncControl,
  type SessionContext,
  type Timer,
  type TransferProgress,
} from '@consul/xkernel'
import {
  crc32,
  decodeManifest,
  encodeManifest,
  type Manifest,
  openChecked,
  partLength,
} from './codec.js'
import type { ResolvedOptions } from './options.js'
import {
  deleteOps,
  HEAD_KEY,
  headValue,
  isReadError,
  keyOf,
  partKey,
  readManifest,
  readPart,
  TRANSFER_KEY,
} from './store.js'

const CHANNEL = 0x52 // 'R'
const ASK = 1
const OFFER = 2
const NONE = 3
const GET = 4
const PART = 5
const GONE = 6
const PART_HEADER = 2 + 8 + 4

/** How long a donor keeps a record it served from being deleted after the last request. */
export const PIN_MS = 10_000

export type TransferFrame =
  | { readonly kind: typeof ASK; readonly minWave: number; readonly resume: number }
  | { readonly kind: typeof OFFER; readonly manifest: Uint8Array }
  | { readonly kind: typeof NONE }
  | {
      readonly kind: typeof GET
      readonly generation: number
      readonly first: number
      readonly count: number
    }
  | {
      readonly kind: typeof PART
      readonly generation: number
      readonly index: number
      readonly bytes: Uint8Array
    }
  | { readonly kind: typeof GONE; readonly generation: number }

function frame(kind: number, size: number): { bytes: Uint8Array; view: DataView } {
  const bytes = new Uint8Array(2 + size)
  bytes[0] = CHANNEL
  bytes[1] = kind
  return { bytes, view: new DataView(bytes.buffer) }
}

export const encodeAsk = (minWave: number, resume = 0): Uint8Array => {
  const f = frame(ASK, 16)
  f.view.setFloat64(2, minWave)
  f.view.setFloat64(10, resume)
  return f.bytes
}
export const encodeOffer = (manifest: Uint8Array): Uint8Array => {
  const f = frame(OFFER, manifest.length)
  f.bytes.set(manifest, 2)
  return f.bytes
}
export const encodeNone = (): Uint8Array => frame(NONE, 0).bytes
export const encodeGet = (generation: number, first: number, count: number): Uint8Array => {
  const f = frame(GET, 14)
  f.view.setFloat64(2, generation)
  f.view.setUint32(10, first)
  f.view.setUint16(14, count)
  return f.bytes
}
export const encodePart = (generation: number, index: number, bytes: Uint8Array): Uint8Array => {
  const f = frame(PART, 12 + bytes.length)
  f.view.setFloat64(2, generation)
  f.view.setUint32(10, index)
  f.bytes.set(bytes, PART_HEADER)
  return f.bytes
}
export const encodeGone = (generation: number): Uint8Array => {
  const f = frame(GONE, 8)
  f.view.setFloat64(2, generation)
  return f.bytes
}

/**
 * Decodes a transfer frame; `undefined` for a direct datagram of another protocol; throws
 * `DecodeError` for a malformed one.
 */
export function decodeTransfer(bytes: Uint8Array): TransferFrame | undefined {
  if (bytes.length < 2 || bytes[0] !== CHANNEL) return undefined
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const need = (n: number) => {
    if (bytes.length !== n)
      throw new DecodeError('INVALID', `transfer frame of ${bytes.length} bytes`)
  }
  const generation = () => {
    const g = view.getFloat64(2)
    if (!Number.isSafeInteger(g) || g < 1) throw new DecodeError('INVALID', 'bad generation')
    return g
  }
  switch (bytes[1]) {
    case ASK: {
      need(18)
      const minWave = view.getFloat64(2)
      const resume = view.getFloat64(10)
      if (!Number.isSafeInteger(minWave) || minWave < 0)
        throw new DecodeError('INVALID', 'bad wave')
      if (!Number.isSafeInteger(resume) || resume < 0)
        throw new DecodeError('INVALID', 'bad generation')
      return { kind: ASK, minWave, resume }
    }
    case OFFER:
      return { kind: OFFER, manifest: bytes.subarray(2) }
    case NONE:
      need(2)
      return { kind: NONE }
    case GET:
      need(16)
      return {
        kind: GET,
        generation: generation(),
        first: view.getUint32(10),
        count: view.getUint16(14),
      }
    case PART:
      if (bytes.length < PART_HEADER) throw new DecodeError('TRUNCATED', 'short PART')
      return {
        kind: PART,
        generation: generation(),
        index: view.getUint32(10),
        bytes: bytes.subarray(PART_HEADER),
      }
    case GONE:
      need(10)
      return { kind: GONE, generation: generation() }
    default:
      throw new DecodeError('INVALID', `unknown transfer frame kind ${bytes[1]}`)
  }
}

// ---- the marker: a transfer under way ------------------------------------------------------

const MARKER_MAGIC = [0x43, 0x4b, 0x54, 0x01] as const
const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

export interface TransferMarker {
  /** The local generation the fetched record is stored under. */
  readonly generation: number
  readonly donor: NodeId
  /** The donor's manifest (its generation is the donor's). */
  readonly manifest: Manifest
}

export function encodeMarker(m: TransferMarker): Uint8Array {
  const donor = encoder.encode(m.donor)
  const manifest = encodeManifest(m.manifest)
  const out = new Uint8Array(4 + 8 + 2 + donor.length + manifest.length + 4)
  const view = new DataView(out.buffer)
  out.set(MARKER_MAGIC, 0)
  view.setFloat64(4, m.generation)
  view.setUint16(12, donor.length)
  out.set(donor, 14)
  out.set(manifest, 14 + donor.length)
  view.setUint32(out.length - 4, crc32(out, out.length - 4))
  return out
}

export function decodeMarker(bytes: Uint8Array): TransferMarker {
  const { view, end, fail } = openChecked(bytes, MARKER_MAGIC, 18 + 44, 'transfer marker')
  const generation = view.getFloat64(4)
  if (!Number.isSafeInteger(generation) || generation < 1) fail('bad generation')
  const n = view.getUint16(12)
  if (14 + n > end) fail('truncated')
  return {
    generation,
    donor: decoder.decode(bytes.subarray(14, 14 + n)),
    manifest: decodeManifest(bytes.subarray(14 + n, end)),
  }
}

const sameRecord = (a: Manifest, b: Manifest) =>
  a.recordCrc === b.recordCrc &&
  a.length === b.length &&
  a.partBytes === b.partBytes &&
  a.wave === b.wave &&
  a.generation === b.generation

// ---- the donor -------------------------------------------------------------------------------

type Ctx = SessionContext<{ psync: PsyncControl }>

export class Donor {
  private readonly pins = new Map<number, number>()
  private readonly manifests = new Map<number, Manifest>()

  constructor(
    private readonly ctx: Ctx,
    private readonly psync: PsyncControl,
    private readonly options: ResolvedOptions,
    /** The newest durable checkpoint's generation, when this member may give one. */
    private readonly offerable: () => number | undefined,
  ) {}

  /** A record being fetched from here: not deleted until `PIN_MS` after the last request. */
  pinned(generation: number): boolean {
    const until = this.pins.get(generation)
    if (until === undefined) return false
    if (until > this.ctx.clock.now()) return true
    this.pins.delete(generation)
    this.manifests.delete(generation)
    return false
  }

  forget(generation: number): void {
    this.pins.delete(generation)
    this.manifests.delete(generation)
  }

  private pin(generation: number): void {
    this.pins.set(generation, this.ctx.clock.now() + PIN_MS)
  }

  onAsk(from: NodeId, minWave: number, resume: number): void {
    const { counters, storage } = this.ctx
    const newest = this.offerable()
    let generation = newest
    let manifest: Manifest | undefined
    try {
      // The record a fetcher had begun on, if still here (it was pinned): its parts stay good.
      if (newest !== undefined && resume > 0 && resume <= newest)
        manifest = readManifest(storage, resume)
      if (manifest !== undefined) generation = resume
      else if (generation !== undefined) manifest = readManifest(storage, generation)
    } catch (error) {
      if (!isReadError(error)) throw error
      manifest = undefined
    }
    if (manifest === undefined || manifest.wave < minWave || generation === undefined) {
      counters.inc('transferRefused')
      this.psync.sendDirect(from, encodeNone())
      return
    }
    this.manifests.set(generation, manifest)
    this.pin(generation)
    counters.inc('transferOffers')
    this.ctx.log.info('state transfer: offering a checkpoint', {
      to: from,
      generation,
      wave: manifest.wave,
      bytes: manifest.length,
    })
    this.psync.sendDirect(from, encodeOffer(encodeManifest(manifest)))
  }

  onGet(from: NodeId, generation: number, first: number, count: number): void {
    const { counters, storage } = this.ctx
    let manifest = this.manifests.get(generation)
    try {
      manifest ??= readManifest(storage, generation)
    } catch (error) {
      if (!isReadError(error)) throw error
      manifest = undefined
    }
    if (manifest === undefined) {
      counters.inc('transferGone')
      this.psync.sendDirect(from, encodeGone(generation))
      return
    }
    this.manifests.set(generation, manifest)
    this.pin(generation)
    const last = Math.min(
      manifest.partCrcs.length,
      first + Math.min(count, this.options.transferWindow),
    )
    for (let i = first; i < last; i++) {
      let part: Uint8Array | undefined
      try {
        // Not checked against the manifest here: the storage checks its own checksum on every
        // read (a rotted value throws), and the fetcher checks each part against the manifest.
        part = storage.get(partKey(generation, i))
        if (part === undefined) throw new DecodeError('TRUNCATED', `part ${i} is missing`)
      } catch (error) {
        if (!isReadError(error)) throw error
        counters.inc('transferGone')
        this.psync.sendDirect(from, encodeGone(generation))
        return
      }
      counters.inc('transferPartsServed')
      counters.inc('transferBytesServed', part.length)
      this.psync.sendDirect(from, encodePart(generation, i, part))
    }
  }
}

// ---- the fetcher -----------------------------------------------------------------------------

export interface FetcherHost {
  readonly ctx: Ctx
  readonly psync: PsyncControl
  readonly options: ResolvedOptions
  /** Whom to ask: the other members of the view. */
  donors(): NodeId[]
  /** The fetched checkpoint is durable under `generation`. */
  complete(generation: number, manifest: Manifest, donor: NodeId): void
}

export class Fetcher {
  private manifest: Manifest | undefined
  /** The current donor confirmed `manifest` (an OFFER since the last switch). */
  private confirmed = false
  private have = new Uint8Array(0)
  private received = 0
  private readonly inflight = new Map<number, number>()
  private retry: number[] = []
  private cursor = 0
  private donor: NodeId
  private donorSince: number
  private lastHeard: number
  private askedAt = Number.NEGATIVE_INFINITY
  private paceFrom = 0
  private paced = 0
  private timer: Timer | undefined
  private done = false
  private closed = false
  /** `donor:generation` pairs a donor answered GONE for. */
  private readonly gone = new Set<string>()
  /** `donor:part` pairs that arrived damaged once. */
  private readonly damaged = new Set<string>()

  constructor(
    private readonly h: FetcherHost,
    /** The local generation the fetched record goes under. */
    private readonly generation: number,
    /** The lowest wave that will do (the log's first wave minus one). */
    private readonly minWave: number,
    resume: TransferMarker | undefined,
  ) {
    const now = h.ctx.clock.now()
    this.donorSince = now
    this.lastHeard = now
    const donors = h.donors()
    if (resume !== undefined && donors.includes(resume.donor)) {
      this.donor = resume.donor
      this.adopt(resume.manifest)
      this.scanParts()
    } else {
      this.donor = donors[h.ctx.random.int(Math.max(1, donors.length))] ?? h.ctx.self
      if (resume !== undefined) this.discardParts()
    }
  }

  progress(): TransferProgress {
    return {
      donor: this.donor,
      wave: this.manifest?.wave ?? 0,
      bytes: this.manifest?.length ?? 0,
      parts: this.manifest?.partCrcs.length ?? 0,
      partsReceived: this.received,
      complete: this.done,
    }
  }

  start(): void {
    this.h.ctx.log.info('state transfer: no usable checkpoint here; fetching one', {
      donor: this.donor,
      minWave: this.minWave,
      resumedParts: this.received,
    })
    this.ask()
    this.arm()
  }

  close(): void {
    this.closed = true
    this.timer?.cancel()
  }

  // ---- frames ----

  onFrame(from: NodeId, f: TransferFrame): void {
    if (this.closed || this.done) return
    const counters = this.h.ctx.counters
    switch (f.kind) {
      case OFFER: {
        if (from !== this.donor) return
        let manifest: Manifest
        try {
          manifest = decodeManifest(f.manifest)
        } catch (error) {
          if (!DecodeError.isInstance(error)) throw error
          counters.inc('transferDroppedMalformed')
          return
        }
        this.lastHeard = this.h.ctx.clock.now()
        if (manifest.wave < this.minWave) {
          this.nextDonor('its checkpoint is too old')
          return
        }
        if (this.manifest === undefined || !sameRecord(this.manifest, manifest)) {
          if (this.manifest !== undefined) this.discardParts()
          this.adopt(manifest)
          this.h.ctx.storage.put(
            TRANSFER_KEY,
            encodeMarker({ generation: this.generation, donor: this.donor, manifest }),
          )
        }
        this.confirmed = true
        this.fill()
        return
      }
      case NONE:
        if (from === this.donor) this.nextDonor('it has no checkpoint to give')
        return
      case GONE: {
        if (from !== this.donor || this.manifest?.generation !== f.generation) return
        // Deleted after all (a pin that ran out): ask for its newest one instead — unless this
        // donor said so of this record before (it cannot read it: a part rotted on its disk).
        const key = `${from}:${f.generation}`
        this.confirmed = false
        this.inflight.clear()
        if (this.gone.has(key)) this.nextDonor('it cannot read the record it offers')
        else {
          this.gone.add(key)
          this.ask()
        }
        return
      }
      case PART:
        this.onPart(from, f.generation, f.index, f.bytes)
        return
      default:
        return
    }
  }

  private onPart(from: NodeId, generation: number, index: number, bytes: Uint8Array): void {
    const { counters, storage, clock } = this.h.ctx
    const m = this.manifest
    if (m === undefined || from !== this.donor || generation !== m.generation) {
      counters.inc('transferPartsStale')
      return
    }
    if (index >= m.partCrcs.length) {
      counters.inc('transferDroppedMalformed')
      return
    }
    this.lastHeard = clock.now()
    if (this.have[index] === 1) {
      counters.inc('transferPartsDuplicate')
      return
    }
    if (
      bytes.length !== partLength(m, index) ||
      this.h.options.crc32(bytes) !== m.partCrcs[index]
    ) {
      counters.inc('transferPartsCorrupt')
      this.inflight.delete(index)
      // Twice the same part damaged from the same donor: its copy is bad, not the network.
      const key = `${from}:${index}`
      if (this.damaged.has(key)) {
        this.nextDonor('it serves a damaged part')
        return
      }
      this.damaged.add(key)
      this.retry.push(index)
      this.fill()
      return
    }
    storage.put(partKey(this.generation, index), bytes.slice())
    this.have[index] = 1
    this.received++
    this.inflight.delete(index)
    counters.inc('transferPartsReceived')
    counters.inc('transferBytesReceived', bytes.length)
    // Made durable now and then, so a crash mid-way loses at most a window's worth.
    if (this.received % this.h.options.transferWindow === 0)
      storage.sync().catch(() => this.h.ctx.counters.inc('transferSyncFailures'))
    if (this.received === m.partCrcs.length) this.finish()
    else this.fill()
  }

  // ---- requests ----

  private ask(): void {
    this.askedAt = this.h.ctx.clock.now()
    this.h.ctx.counters.inc('transferAsks')
    // Parts of a record are kept only for the same record of the same donor.
    const resume = this.manifest !== undefined && this.received > 0 ? this.manifest.generation : 0
    this.h.psync.sendDirect(this.donor, encodeAsk(this.minWave, resume))
  }

  private nextDonor(why: string): void {
    const donors = this.h.donors()
    const at = donors.indexOf(this.donor)
    const next = donors[(at + 1) % Math.max(1, donors.length)] ?? this.donor
    this.h.ctx.counters.inc('transferDonorChanges')
    this.h.ctx.log.warn('state transfer: trying another donor', {
      from: this.donor,
      to: next,
      why,
      partsReceived: this.received,
    })
    this.donor = next
    this.confirmed = false
    this.inflight.clear()
    this.retry = []
    this.cursor = 0
    const now = this.h.ctx.clock.now()
    this.donorSince = now
    this.lastHeard = now
    this.ask()
  }

  private nextMissing(): number | undefined {
    while (this.retry.length > 0) {
      const i = this.retry.pop()!
      if (this.have[i] === 0 && !this.inflight.has(i)) return i
    }
    const n = this.have.length
    while (this.cursor < n) {
      const i = this.cursor++
      if (this.have[i] === 0 && !this.inflight.has(i)) return i
    }
    return undefined
  }

  /** Asks for parts until the window is full (or the pace says wait). */
  private fill(): void {
    const m = this.manifest
    if (m === undefined || !this.confirmed || this.done) return
    const { options } = this.h
    const now = this.h.ctx.clock.now()
    let run: number[] = []
    const flush = () => {
      if (run.length === 0) return
      this.h.ctx.counters.inc('transferRequests')
      this.h.psync.sendDirect(this.donor, encodeGet(m.generation, run[0]!, run.length))
      run = []
    }
    while (this.inflight.size < options.transferWindow) {
      if (options.transferBytesPerSecond > 0) {
        const budget = ((now - this.paceFrom) * options.transferBytesPerSecond) / 1000
        if (this.paced + m.partBytes > budget + m.partBytes * options.transferWindow) break
      }
      const i = this.nextMissing()
      if (i === undefined) break
      this.inflight.set(i, now)
      this.paced += partLength(m, i)
      if (run.length > 0 && i !== run[run.length - 1]! + 1) flush()
      run.push(i)
    }
    flush()
  }

  private arm(): void {
    if (this.closed || this.done) return
    const every = Math.max(1, Math.min(50, this.h.options.transferRetryMs / 2))
    this.timer = this.h.ctx.clock.setTimer(every, () => {
      this.tick()
      this.arm()
    })
  }

  private tick(): void {
    const now = this.h.ctx.clock.now()
    const { transferRetryMs, transferDonorTimeoutMs } = this.h.options
    if (
      now - this.lastHeard >= transferDonorTimeoutMs &&
      now - this.donorSince >= transferDonorTimeoutMs
    ) {
      this.nextDonor('it stopped answering')
      return
    }
    if (!this.confirmed) {
      if (now - this.askedAt >= transferRetryMs) this.ask()
      return
    }
    for (const [i, at] of this.inflight) {
      if (now - at < transferRetryMs) continue
      this.inflight.delete(i)
      this.retry.push(i)
      this.h.ctx.counters.inc('transferPartsRetried')
    }
    this.fill()
  }

  // ---- storage ----

  private adopt(manifest: Manifest): void {
    this.manifest = manifest
    this.have = new Uint8Array(manifest.partCrcs.length)
    this.received = 0
    this.inflight.clear()
    this.retry = []
    this.cursor = 0
    this.paceFrom = this.h.ctx.clock.now()
    this.paced = 0
  }

  /** After a crash: the parts already here and intact count. */
  private scanParts(): void {
    const m = this.manifest!
    const { storage } = this.h.ctx
    const local = { ...m, generation: this.generation }
    for (let i = 0; i < m.partCrcs.length; i++) {
      try {
        readPart(storage, local, i, this.h.options.crc32)
        this.have[i] = 1
        this.received++
      } catch (error) {
        if (!isReadError(error)) throw error
      }
    }
    this.h.ctx.counters.inc('transferPartsResumed', this.received)
  }

  private discardParts(): void {
    const { storage } = this.h.ctx
    storage.batch([...deleteOps(storage, this.generation), { type: 'del', key: TRANSFER_KEY }])
    this.manifest = undefined
    this.have = new Uint8Array(0)
    this.received = 0
  }

  /** Every part is in and checked: make the record this member's newest checkpoint. */
  private finish(): void {
    const m = this.manifest!
    const { storage, counters, log } = this.h.ctx
    const local: Manifest = { ...m, generation: this.generation }
    this.done = true
    this.timer?.cancel()
    storage.batch([
      { type: 'put', key: keyOf(this.generation), value: encodeManifest(local) },
      { type: 'put', key: HEAD_KEY, value: headValue(this.generation) },
      { type: 'del', key: TRANSFER_KEY },
    ])
    const donor = this.donor
    storage.sync().then(
      () => {
        counters.inc('transfersCompleted')
        this.h.complete(this.generation, local, donor)
      },
      (error: unknown) => {
        // Written, not known durable: a restart now still reads it; a crash may lose it, and
        // the next incarnation, finding no usable checkpoint, fetches one again.
        counters.inc('checkpointSyncFailures')
        log.error('state transfer: the fetched checkpoint may not be durable', {
          error: String(error),
        })
        this.h.complete(this.generation, local, donor)
      },
    )
  }
}
