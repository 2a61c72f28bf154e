import { describe, expect, it } from 'vitest'
import {
  FRAGMENT_HEADER_BYTES,
  type FragmentHeader,
  fragmentCount,
  parseFragment,
  writeFragmentHeader,
} from '../src/fragments.js'
import {
  PARTIAL_OVERHEAD_BYTES,
  partialCost,
  Reassembler,
  type ReassemblyDrop,
} from '../src/reassembly.js'
import { bytes, ManualClock } from './fakes.js'

/** The fragments of `message` with chunks of `chunkSize`, each as a standalone body. */
function split(message: Uint8Array, chunkSize: number, messageId = 1): Uint8Array[] {
  const count = fragmentCount(message.length, chunkSize)
  return Array.from({ length: count }, (_, index) => {
    const chunk = message.subarray(index * chunkSize, (index + 1) * chunkSize)
    const out = new Uint8Array(FRAGMENT_HEADER_BYTES + chunk.length)
    writeFragmentHeader(out, 0, messageId, message.length, chunkSize, index)
    out.set(chunk, FRAGMENT_HEADER_BYTES)
    return out
  })
}

const parse = (body: Uint8Array) => parseFragment(body, 0, body.length)

describe('fragment header', () => {
  it('writes the documented layout', () => {
    const out = new Uint8Array(12)
    writeFragmentHeader(out, 0, 0x01020304, 0x00010203, 0x0506, 0x0708)
    expect([...out]).toEqual([1, 2, 3, 4, 0, 1, 2, 3, 5, 6, 7, 8])
  })

  it('places each chunk by index × chunkSize and sizes the last one from the total', () => {
    const parts = split(bytes(25), 10).map(parse)
    expect(parts.map((p) => [p?.index, p?.count, p?.offset, p?.chunkLength])).toEqual([
      [0, 3, 0, 10],
      [1, 3, 10, 10],
      [2, 3, 20, 5],
    ])
  })

  it('rejects malformed fragments', () => {
    const good = split(bytes(25), 10)[1]!
    const variant = (patch: (b: Uint8Array) => void, cut = 0) => {
      const copy = good.slice(0, good.length - cut)
      patch(copy)
      return parse(copy)
    }
    expect(parse(good)).toBeDefined()
    expect(parse(good.subarray(0, 12))).toBeUndefined() // header only
    expect(variant(() => {}, 1)).toBeUndefined() // chunk shorter than its place
    expect(parse(new Uint8Array([...good, 0]))).toBeUndefined() // longer
    expect(variant((b) => b.set([0, 0], 8))).toBeUndefined() // chunk size 0
    expect(variant((b) => b.set([0, 3], 10))).toBeUndefined() // index past the end
    expect(variant((b) => b.set([0, 0, 0, 10], 4))).toBeUndefined() // one fragment is not a fragment
    // 70,000 chunks of 1 byte cannot be indexed by a u16.
    expect(variant((b) => b.set([0, 1, 0x11, 0x70, 0, 1], 4))).toBeUndefined()
  })
})

describe('reassembly', () => {
  const setup = (limits = { timeoutMs: 1000, maxBytes: 10_000 }) => {
    const clock = new ManualClock()
    const drops: ReassemblyDrop[] = []
    const r = new Reassembler(limits, clock, (reason) => drops.push(reason))
    const feed = (sender: number, body: Uint8Array) => r.accept(sender, body, parse(body)!)
    return { clock, drops, r, feed }
  }

  it('rebuilds a message from fragments in order, out of order and with duplicates', () => {
    const message = bytes(2500, 3)
    const { r, feed, drops } = setup()
    const parts = split(message, 300)
    const order = [5, 0, 8, 3, 3, 1, 7, 2, 0, 6, 4]
    const results = order.map((i) => feed(1, parts[i]!))
    expect(results.slice(0, -1).every((x) => x === undefined)).toBe(true)
    expect(results.at(-1)).toEqual(message)
    expect(drops).toEqual(['duplicateFragment', 'duplicateFragment'])
    expect(r.partialCount).toBe(0)
    expect(r.bytesHeld).toBe(0)
  })

  it('keeps messages of different senders and ids apart', () => {
    const { feed } = setup()
    const m1 = bytes(50, 1)
    const m2 = bytes(50, 2)
    const a = split(m1, 20, 9)
    const b = split(m2, 20, 9) // same id, other sender
    const c = split(m2, 20, 10) // same sender, other id
    expect([feed(1, a[0]!), feed(2, b[0]!), feed(1, c[0]!), feed(1, a[1]!)]).toEqual([
      undefined,
      undefined,
      undefined,
      undefined,
    ])
    expect(feed(2, b[1]!)).toBeUndefined()
    expect(feed(1, a[2]!)).toEqual(m1)
    expect(feed(2, b[2]!)).toEqual(m2)
  })

  it('drops a fragment whose shape disagrees with the partial message of the same id', () => {
    const { feed, drops } = setup()
    feed(1, split(bytes(50), 20, 4)[0]!)
    expect(feed(1, split(bytes(60), 20, 4)[1]!)).toBeUndefined()
    expect(drops).toEqual(['badFragment'])
  })

  it('gives up on a partial message after the timeout', () => {
    const { clock, drops, r, feed } = setup()
    const parts = split(bytes(100), 30)
    feed(1, parts[0]!)
    clock.advance(600)
    feed(2, parts[0]!)
    clock.advance(399)
    expect(drops).toEqual([])
    clock.advance(1)
    expect(drops).toEqual(['reassemblyTimeout'])
    expect(r.partialCount).toBe(1)
    // The late fragment starts a new partial, which never completes either.
    expect(feed(1, parts[1]!)).toBeUndefined()
    clock.advance(1000)
    expect(drops).toEqual(['reassemblyTimeout', 'reassemblyTimeout', 'reassemblyTimeout'])
    expect(r.partialCount).toBe(0)
    expect(r.bytesHeld).toBe(0)
    expect(clock.pending).toBe(0)
  })

  it('evicts the oldest partial when memory runs out, and refuses a message larger than all of it', () => {
    const cost = partialCost(1000, 4)
    const { drops, r, feed } = setup({ timeoutMs: 1000, maxBytes: 3 * cost })
    const messages = [1, 2, 3, 4].map((seed) => bytes(1000, seed))
    for (const [i, m] of messages.entries()) feed(1, split(m, 250, i)[0]!)
    expect(drops).toEqual(['reassemblyEvicted'])
    expect(r.partialCount).toBe(3)
    expect(r.bytesHeld).toBe(3 * cost)
    // Message 0 was evicted: its other fragments start over; message 1 still completes.
    const rest = split(messages[1]!, 250, 1).slice(1)
    expect(rest.map((f) => feed(1, f)).at(-1)).toEqual(messages[1])
    expect(feed(1, split(bytes(4000), 1000, 99)[0]!)).toBeUndefined()
    expect(drops).toEqual(['reassemblyEvicted', 'fragmentTooLarge'])
    expect(r.bytesHeld).toBeLessThanOrEqual(3 * cost)
  })

  it('charges tiny fragments a fixed overhead, so a flood of them stays bounded', () => {
    const maxBytes = 50 * PARTIAL_OVERHEAD_BYTES
    const { r, feed, drops } = setup({ timeoutMs: 1000, maxBytes })
    for (let id = 0; id < 5000; id++) {
      const body = new Uint8Array(FRAGMENT_HEADER_BYTES + 1)
      writeFragmentHeader(body, 0, id, 2, 1, 0)
      feed(id % 7, body)
      expect(r.bytesHeld).toBeLessThanOrEqual(maxBytes)
    }
    expect(r.partialCount).toBeLessThan(50)
    expect(drops.filter((d) => d === 'reassemblyEvicted').length).toBeGreaterThan(4900)
  })

  it('forgets everything on clear() and cancels its timer', () => {
    const { clock, r, feed, drops } = setup()
    feed(1, split(bytes(100), 30)[0]!)
    r.clear()
    expect(r.partialCount).toBe(0)
    expect(clock.pending).toBe(0)
    clock.advance(5000)
    expect(drops).toEqual([])
  })
})

export type { FragmentHeader }
