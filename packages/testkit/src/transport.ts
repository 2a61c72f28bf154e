/**
 * `@consul/testkit/transport` — the conformance suite for `Transport` implementations: what
 * is sent arrives intact at the named member (delivery), nothing arrives that was not sent
 * (no creation), bytes arrive unchanged (no corruption), broadcast reaches every peer and
 * not the sender, forged or tampered datagrams are dropped and counted (integrity), bad
 * arguments fail clearly, and close stops delivery.
 *
 * A transport may lose, duplicate or reorder datagrams in general; the harness provides a
 * setting where it does not lose (loopback, a lossless simulated network) so delivery can be
 * asserted. A transport that guards a real wire declares `integrity: true` and its harness
 * puts raw bytes on the wire (`injectRaw`) and shows what went over it (`capture`): forged
 * and tampered datagrams must then be dropped and counted in `stats()` under names that
 * contain `drop`.
 *
 * ```ts
 * import { transportSuite } from '@consul/testkit/transport'
 * transportSuite({ name: 'my-transport', integrity: true, create: (ids) => startMyTransports(ids) })
 * ```
 */
import type { NodeId, Transport } from '@consul/xkernel'
import { afterEach, describe, expect, it } from 'vitest'

export interface TransportHarness {
  /** One transport per id, in the order of `create`'s ids. */
  readonly transports: readonly Transport[]
  /** Waits until datagrams in flight have arrived. */
  settle(): Promise<void>
  /** Puts raw bytes on the wire to `to`, as a forger on the network would. */
  injectRaw?(to: NodeId, bytes: Uint8Array): Promise<void>
  /** Raw datagrams seen on the wire since the last call. */
  capture?(): Promise<Uint8Array[]>
  close(): Promise<void>
}

export interface TransportSetup {
  readonly name: string
  /** Starts one connected transport per id (at least 3 ids are asked for). */
  create(ids: readonly NodeId[]): Promise<TransportHarness>
  /**
   * The transport guards a real wire: the harness provides `injectRaw` and `capture`, and the
   * integrity tests are declared. An in-process network with no wire to forge on sets false.
   */
  readonly integrity: boolean
}

interface Received {
  readonly at: NodeId
  readonly from: NodeId
  readonly data: Uint8Array
}

function listen(harness: TransportHarness): Received[] {
  const received: Received[] = []
  for (const t of harness.transports) {
    t.onReceive((from, data) => {
      received.push({ at: t.self, from, data: Uint8Array.from(data) })
    })
  }
  return received
}

const payload = (seed: number, length: number) => {
  const out = new Uint8Array(length)
  let x = seed * 2654435761
  for (let i = 0; i < length; i++) {
    x = (x * 1103515245 + 12345) >>> 0
    out[i] = x >>> 24
  }
  return out
}

const key = (data: Uint8Array) => Buffer.from(data).toString('base64')

/** Settles until `done()` holds (at most 20 rounds): a loaded machine may need more than one. */
async function settleUntil(h: TransportHarness, done: () => boolean): Promise<void> {
  for (let round = 0; round < 20 && !done(); round++) await h.settle()
}

function dropCount(t: Transport): number {
  let n = 0
  for (const [name, value] of Object.entries(t.stats()))
    if (name.toLowerCase().includes('drop')) n += value
  return n
}

/** Declares the transport conformance tests for `setup`. */
export function transportSuite(setup: TransportSetup): void {
  describe(`Transport conformance: ${setup.name}`, () => {
    const ids = ['a', 'b', 'c']
    let harness: TransportHarness | undefined
    const start = async () => {
      harness = await setup.create(ids)
      expect(harness.transports.map((t) => t.self)).toEqual(ids)
      return harness
    }
    afterEach(async () => {
      await harness?.close()
      harness = undefined
    })

    it('knows itself and its peers', async () => {
      const h = await start()
      for (const t of h.transports) {
        expect([...t.peers()].sort()).toEqual(ids.filter((id) => id !== t.self))
      }
    })

    it('delivers a unicast datagram to the named member only, naming the sender', async () => {
      const h = await start()
      const received = listen(h)
      h.transports[0]!.send('b', payload(1, 32))
      await h.settle()
      expect(received.map((r) => [r.at, r.from])).toEqual([['b', 'a']])
      expect(received[0]!.data).toEqual(payload(1, 32))
    })

    it('broadcast reaches every peer and not the sender', async () => {
      const h = await start()
      const received = listen(h)
      h.transports[1]!.broadcast(payload(2, 16))
      await h.settle()
      expect(received.map((r) => r.at).sort()).toEqual(['a', 'c'])
      for (const r of received) {
        expect(r.from).toBe('b')
        expect(r.data).toEqual(payload(2, 16))
      }
    })

    it('delivers many datagrams, creating none and corrupting none', async () => {
      const h = await start()
      const received = listen(h)
      const sent = new Map<string, number>()
      const sizes = [0, 1, 7, 100, 1000, 1500, 9000, 60_000]
      let n = 0
      for (let round = 0; round < 25; round++) {
        for (const size of sizes) {
          const data = payload(++n, size)
          sent.set(key(data), n)
          h.transports[n % 3]!.send(ids[(n + 1) % 3]!, data)
        }
      }
      await settleUntil(h, () => new Set(received.map((r) => key(r.data))).size >= sent.size)
      // No creation, no corruption: everything received is byte-identical to something sent.
      for (const r of received)
        expect(sent.has(key(r.data)), 'received a datagram nobody sent').toBe(true)
      // Delivery: in the harness's lossless setting, everything arrives.
      expect(new Set(received.map((r) => key(r.data))).size).toBe(sent.size)
    })

    it('throws TypeError for an unknown member', async () => {
      const h = await start()
      expect(() => h.transports[0]!.send('nobody', payload(3, 4))).toThrow(TypeError)
      expect(() => h.transports[0]!.send('a', payload(3, 4))).toThrow(TypeError)
    })

    it('stops delivering after close, and close is idempotent', async () => {
      const h = await start()
      const received = listen(h)
      await h.transports[2]!.close()
      await h.transports[2]!.close()
      h.transports[0]!.send('c', payload(4, 8))
      expect(() => h.transports[2]!.send('a', payload(5, 8))).not.toThrow()
      await h.settle()
      expect(received).toEqual([])
    })

    if (setup.integrity) {
      const wire = (h: TransportHarness) => {
        if (h.injectRaw === undefined || h.capture === undefined) {
          throw new Error(
            `${setup.name}: integrity is set, so the harness must provide injectRaw and capture`,
          )
        }
        return { inject: h.injectRaw.bind(h), capture: h.capture.bind(h) }
      }

      it('integrity: random bytes on the wire never reach the receiver and are counted', async () => {
        const h = await start()
        const { inject } = wire(h)
        const received = listen(h)
        const before = dropCount(h.transports[1]!)
        for (let i = 0; i < 50; i++) await inject('b', payload(100 + i, 1 + ((i * 37) % 300)))
        await settleUntil(h, () => dropCount(h.transports[1]!) >= before + 50)
        expect(received).toEqual([])
        expect(dropCount(h.transports[1]!)).toBeGreaterThanOrEqual(before + 50)
      })

      it('integrity: bit flips and truncations of a real datagram are dropped and counted', async () => {
        const h = await start()
        const { inject, capture } = wire(h)
        const received = listen(h)
        await capture()
        h.transports[0]!.send('b', payload(7, 64))
        await h.settle()
        const seen = await capture()
        expect(seen.length).toBeGreaterThan(0)
        expect(received).toHaveLength(1)
        const before = dropCount(h.transports[1]!)
        const original = seen[0]!
        const step = Math.max(1, Math.floor(original.length / 8))
        let tampered = 0
        for (let bit = 0; bit < original.length * 8; bit += step) {
          const copy = Uint8Array.from(original)
          copy[bit >> 3]! ^= 1 << (bit & 7)
          await inject('b', copy)
          tampered++
        }
        for (let cut = 1; cut < original.length; cut += step) {
          await inject('b', original.slice(0, cut))
          tampered++
        }
        await settleUntil(h, () => dropCount(h.transports[1]!) >= before + tampered)
        expect(received).toHaveLength(1)
        expect(dropCount(h.transports[1]!)).toBeGreaterThanOrEqual(before + tampered)
      })
    }
  })
}
