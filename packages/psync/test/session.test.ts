import { dist, noCreation, noDuplication, Simulation } from '@consul/sim'
import { groupTag, MessageBuffer, PSYNC, type PsyncMessage, stack } from '@consul/xkernel'
import { describe, expect, it } from 'vitest'
import { psyncCheckers } from '../src/checkers.js'
import { encodeData, encodeLeaves, encodeRequest, type Ref } from '../src/codec.js'
import { type PsyncOptions, psync } from '../src/index.js'

const text = (s: string) => new TextEncoder().encode(s)
const str = (m: PsyncMessage) => new TextDecoder().decode(m.payload)

async function cluster(
  options: {
    nodes?: number
    seed?: number
    psync?: PsyncOptions
    delay?: number
    groupOptions?: Record<string, unknown>
  } = {},
) {
  const sim = new Simulation({
    seed: options.seed ?? 1,
    nodes: options.nodes ?? 3,
    stack: stack().use(psync({ logEveryMs: 1, ...options.psync })),
    network: { delay: dist.constant(options.delay ?? 1) },
    ...(options.groupOptions === undefined ? {} : { groupOptions: () => options.groupOptions }),
  })
  await sim.start()
  await sim.openAll({ port: 'g' })
  const conv = (node: string) => sim.host(node).group('g')!.get(PSYNC)
  const delivered = new Map<string, PsyncMessage[]>()
  for (const node of sim.nodes) {
    const list: PsyncMessage[] = []
    delivered.set(node, list)
    conv(node).onDeliver((m) => list.push(m))
  }
  return { sim, conv, delivered }
}

/** Puts a raw psync frame on the wire from `from` to `to` (group tag included). */
function inject(sim: Simulation, from: string, to: string, frame: Uint8Array) {
  sim.network
    .endpoint(from)
    .send(to, MessageBuffer.fromPayload(frame).pushU32(groupTag('g', sim.nodes)).view())
}

describe('delivery', () => {
  it('delivers every message everywhere in causal order, own messages included', async () => {
    const { sim, conv, delivered } = await cluster()
    sim.at(1, () => void conv('n1').send(text('a')))
    sim.at(10, () => void conv('n2').send(text('b')))
    sim.at(20, () => void conv('n3').send(text('c')))
    await sim.run({ until: 100 })
    for (const node of sim.nodes) expect(delivered.get(node)!.map(str)).toEqual(['a', 'b', 'c'])
    const c = delivered.get('n1')![2]!
    expect(c.deps).toEqual(['n2:1'])
    expect(c.depth).toBe(2)
    expect(conv('n1').precedes('n1:1', 'n3:1')).toBe(true)
    expect(conv('n1').precedes('n3:1', 'n1:1')).toBe(false)
    expect(sim.check([noCreation, noDuplication, ...psyncCheckers])).toEqual([])
  })

  it('delivers concurrent messages in a causal order and puts them in one wave', async () => {
    const { sim, conv, delivered } = await cluster({ delay: 5 })
    sim.at(1, () => {
      for (const n of sim.nodes) conv(n).send(text(n))
    })
    await sim.run({ until: 50 })
    for (const n of sim.nodes) expect(delivered.get(n)).toHaveLength(3)
    expect(
      conv('n1')
        .wave(0)
        .map((m) => m.id),
    ).toEqual(['n1:1', 'n2:1', 'n3:1'])
    expect(conv('n1').precedes('n1:1', 'n2:1')).toBe(false)
    expect(
      conv('n1')
        .leaves()
        .map((m) => m.id)
        .sort(),
    ).toEqual(['n1:1', 'n2:1', 'n3:1'])
    expect(conv('n2').waveComplete(0)).toBe(true)
    expect(conv('n2').waveComplete(1)).toBe(false)
  })

  it('reports waves in order with onWave, sorted by sender', async () => {
    const { sim, conv } = await cluster({ delay: 2 })
    const waves: string[] = []
    conv('n2').onWave((w, ms) => waves.push(`${w}:${ms.map((m) => m.id).join(',')}`))
    sim.at(1, () => {
      conv('n3').send(text('x'))
      conv('n1').send(text('y'))
    })
    sim.at(10, () => {
      for (const n of sim.nodes) conv(n).send(text('z'))
    })
    await sim.run({ until: 50 })
    expect(waves).toEqual(['0:n1:1,n3:1', '1:n1:2,n2:1,n3:2'])
  })

  it('stability: a message is stable once every other member sent something after it', async () => {
    const { sim, conv } = await cluster({ delay: 2 })
    sim.at(1, () => void conv('n1').send(text('m')))
    await sim.run({ until: 10 })
    expect(conv('n1').stable('n1:1')).toBe(false)
    sim.at(11, () => void conv('n2').send(text('ack')))
    await sim.run({ until: 20 })
    expect(conv('n1').stable('n1:1')).toBe(false)
    sim.at(21, () => void conv('n3').send(text('ack')))
    await sim.run({ until: 30 })
    for (const n of sim.nodes) expect(conv(n).stable('n1:1')).toBe(true)
    expect(conv('n1').stable('n2:1')).toBe(false)
    expect(sim.history.of('stable', 'n2').map((r) => r.id)).toEqual(['n1:1'])
  })

  it('pull-style delivery with an async iterator when opened with delivery: iterator', async () => {
    const { sim, conv } = await cluster({ groupOptions: { psync: { delivery: 'iterator' } } })
    const it = conv('n2').messages()
    sim.at(1, () => {
      conv('n1').send(text('one'))
      conv('n1').send(text('two'))
    })
    await sim.run({ until: 20 })
    const first = await it.next()
    const second = await it.next()
    expect([first.value, second.value].map((m) => str(m as PsyncMessage))).toEqual(['one', 'two'])
    const callback = await cluster()
    expect(() => callback.conv('n1').messages()).toThrow(/delivery 'iterator'/)
  })
})

describe('loss and retransmission', () => {
  it('recovers a lost last message by re-sending it, and fetches a lost middle one', async () => {
    const { sim, conv, delivered } = await cluster({ delay: 1 })
    sim.network.configure({ loss: 1 }, 'n1', 'n2')
    sim.at(1, () => void conv('n1').send(text('lost to n2')))
    sim.at(5, () => sim.network.configure({ loss: 0 }, 'n1', 'n2'))
    await sim.run({ until: 500 })
    expect(delivered.get('n2')!.map(str)).toEqual(['lost to n2'])
    expect(sim.host('n1').stats().psync!.resent).toBeGreaterThan(0)
  })

  it('a member that missed a long stretch catches up in few round trips', async () => {
    const { sim, conv, delivered } = await cluster({ delay: 1 })
    sim.network.partition(['n3'], ['n1', 'n2'])
    for (let i = 0; i < 200; i++)
      sim.at(1 + i, () => void conv(i % 2 === 0 ? 'n1' : 'n2').send(text(`m${i}`)))
    sim.at(300, () => sim.network.heal())
    await sim.run({ until: 450 })
    expect(delivered.get('n3')).toHaveLength(200)
    // One request answered with the missing stretch, not 200 one-by-one round trips.
    expect(sim.host('n3').stats().psync!.requestsSent).toBeLessThan(10)
    expect(sim.check([noCreation, noDuplication, ...psyncCheckers])).toEqual([])
  })

  it('survives 30% loss, duplication and reordering with every invariant', async () => {
    const sim = new Simulation({
      seed: 9,
      nodes: 5,
      stack: stack().use(psync({ logEveryMs: 1 })),
      network: {
        delay: dist.exponential(3, 0.5),
        loss: 0.3,
        duplicate: 0.1,
        reorder: 0.3,
        reorderMs: 20,
      },
    })
    await sim.start()
    await sim.openAll({ port: 'g' })
    sim.every(3, 1000, () => {
      const n = sim.nodes[sim.random.int(5)]!
      sim.host(n).group('g')!.get(PSYNC).send(text('x'))
    })
    sim.at(1100, () => sim.network.configure({ loss: 0, duplicate: 0, reorder: 0 }))
    sim.at(2000, () => {
      for (const n of sim.nodes) sim.host(n).group('g')!.get(PSYNC).send(new Uint8Array())
    })
    await sim.run({ until: 4000 })
    expect(sim.check([noCreation, noDuplication, ...psyncCheckers])).toEqual([])
    const counts = sim.nodes.map((n) => sim.history.delivered(n).length)
    expect(new Set(counts).size).toBe(1)
    expect(counts[0]).toBeGreaterThan(300)
  })
})

describe('bad input', () => {
  it('counts and drops hostile frames without touching the graph', async () => {
    const { sim, conv, delivered } = await cluster()
    sim.at(1, () => void conv('n1').send(text('ok')))
    await sim.run({ until: 20 })
    const before = delivered.get('n2')!.length
    const frames: Uint8Array[] = [
      new Uint8Array([]), // empty
      new Uint8Array([42]), // unknown kind
      encodeData(9, 1, [], text('unknown sender')),
      encodeData(2, 5, [{ member: 2, seq: 5 }], text('self-reference')),
      encodeData(2, 5, [{ member: 2, seq: 9 }], text('cycle via own future')),
      encodeData(2, 2 ** 40, [], text('absurd seq')),
      encodeData(2, 2, [{ member: 0, seq: 2 ** 40 }], text('absurd dep')),
      encodeData(
        2,
        1,
        Array.from({ length: 200 }, (_, i) => ({ member: i % 3, seq: 1 })),
        text('huge deps'),
      ),
      encodeLeaves(
        Array.from({ length: 2000 }, () => ({ member: 0, seq: 1 })),
        [0, 0, 0],
      ),
      encodeRequest([{ member: 0, seq: 1 }], [0]), // have vector too short
      new Uint8Array([1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80]), // overlong varint
    ]
    for (const f of frames) inject(sim, 'n3', 'n2', f)
    // A cycle between two messages that can never be satisfied: held, then expired or bounded.
    inject(sim, 'n3', 'n2', encodeData(2, 7, [{ member: 0, seq: 50 }], text('waits forever')))
    await sim.run({ until: 40 })
    const stats = sim.host('n2').stats().psync!
    expect(stats.droppedMalformed).toBe(9)
    expect(stats.droppedAbsurdSeq).toBe(2)
    expect(stats.heldNow).toBe(1)
    expect(delivered.get('n2')).toHaveLength(before)
    // The conversation still works.
    sim.at(50, () => void conv('n3').send(text('after')))
    await sim.run({ until: 100 })
    expect(delivered.get('n2')!.map(str)).toContain('after')
    expect(sim.check([noCreation, noDuplication])).toEqual([])
  })

  it('bounds held messages: overflow is counted and dropped', async () => {
    const { sim, delivered } = await cluster({ psync: { maxHeld: 5 } })
    for (let i = 0; i < 20; i++) {
      const deps: Ref[] = [{ member: 0, seq: 1000 + i }]
      inject(sim, 'n3', 'n2', encodeData(2, i + 1, deps, text('orphan')))
    }
    await sim.run({ until: 20 })
    const stats = sim.host('n2').stats().psync!
    expect(stats.heldNow).toBe(5)
    expect(stats.droppedHeldOverflow).toBe(15)
    expect(delivered.get('n2')).toHaveLength(0)
  })

  it('expires held messages whose predecessors never come', async () => {
    const { sim } = await cluster({ psync: { heldExpiryMs: 100 } })
    inject(sim, 'n3', 'n2', encodeData(2, 1, [{ member: 0, seq: 77 }], text('orphan')))
    await sim.run({ until: 400 })
    const stats = sim.host('n2').stats().psync!
    expect(stats.droppedHeldExpired).toBe(1)
    expect(stats.heldNow).toBe(0)
  })

  it('rejects bad API arguments with PsyncError codes', async () => {
    const { conv } = await cluster()
    const c = conv('n1')
    expect(() => c.send('text' as unknown as Uint8Array)).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
    )
    expect(() => c.maskOut('zz')).toThrow(expect.objectContaining({ code: 'NOT_A_MEMBER' }))
    expect(() => c.maskOut('n1')).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }))
    expect(() => c.exclude('n2', -1)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }))
    expect(() => c.setPruneFloor(1.5)).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
    )
    expect(() => c.onDeliver(null as unknown as () => void)).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
    )
    expect(c.precedes('garbage', 'n1:1')).toBe(false)
    expect(c.stable('nobody:1')).toBe(false)
    expect(c.depth('n1:99')).toBeUndefined()
    expect(() => psync({ logEveryMs: -1 })).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
    )
    expect(() => psync({ delivery: 'push' as 'callback' })).toThrow(/delivery/)
    const small = await cluster({ psync: { maxPayloadBytes: 4 } })
    expect(() => small.conv('n1').send(new Uint8Array(5))).toThrow(
      expect.objectContaining({ code: 'PAYLOAD_TOO_LARGE' }),
    )
  })
})

describe('membership list', () => {
  it('maskOut removes a member from stability and wave completion and drops its new messages', async () => {
    const { sim, conv, delivered } = await cluster({ delay: 1 })
    sim.at(1, () => void conv('n1').send(text('a')))
    sim.at(5, () => void conv('n2').send(text('b')))
    await sim.run({ until: 10 })
    expect(conv('n1').stable('n1:1')).toBe(false)
    expect(conv('n1').waveComplete(0)).toBe(false)
    conv('n1').maskOut('n3')
    expect(conv('n1').members()).toEqual(['n1', 'n2'])
    expect(conv('n1').stable('n1:1')).toBe(true)
    expect(conv('n1').waveComplete(0)).toBe(true)
    sim.at(11, () => void conv('n3').send(text('masked')))
    await sim.run({ until: 30 })
    expect(delivered.get('n1')!.map(str)).not.toContain('masked')
    expect(sim.host('n1').stats().psync!.droppedMasked).toBeGreaterThan(0)
    const changes: string[][] = []
    conv('n1').onMembersChanged((m) => changes.push([...m]))
    conv('n1').maskIn('n3')
    expect(conv('n1').members()).toEqual(['n1', 'n2', 'n3'])
    conv('n1').exclude('n2', 0)
    expect(changes).toEqual([
      ['n1', 'n2', 'n3'],
      ['n1', 'n3'],
    ])
  })

  it('exclude with a cut counts the messages up to the cut and refuses later ones', async () => {
    const { sim, conv, delivered } = await cluster({ delay: 1 })
    sim.at(1, () => void conv('n3').send(text('counted')))
    await sim.run({ until: 10 })
    conv('n1').exclude('n3', 1)
    sim.at(11, () => void conv('n3').send(text('beyond the cut')))
    await sim.run({ until: 30 })
    expect(delivered.get('n1')!.map(str)).toEqual(['counted'])
    expect(sim.host('n1').stats().psync!.droppedExcluded).toBeGreaterThan(0)
    expect(conv('n1').members()).toEqual(['n1', 'n2'])
  })
})

describe('restart and pruning', () => {
  it('a crashed member restores its graph from the log and catches up on what it missed', async () => {
    const { sim, conv } = await cluster({ delay: 1 })
    for (let i = 0; i < 30; i++)
      sim.at(1 + i, () => void conv(sim.nodes[i % 3]!).send(text(`m${i}`)))
    sim.at(40, () => sim.crash('n2'))
    for (let i = 30; i < 60; i++)
      sim.at(41 + i, () => void conv(i % 2 === 0 ? 'n1' : 'n3').send(text(`m${i}`)))
    sim.at(150, async () => {
      await sim.restart('n2')
    })
    sim.at(400, () => {
      for (const n of sim.nodes) conv(n).send(new Uint8Array())
    })
    await sim.run({ until: 800 })
    const stats = sim.host('n2').stats().psync!
    expect(stats.restoredMessages).toBeGreaterThan(20)
    expect(stats.restartsSent).toBeGreaterThan(0)
    const restored = sim.history.delivered('n2').filter((r) => r.incarnation === 1)
    expect(restored.length).toBe(sim.history.delivered('n1').length)
    expect(sim.check([noCreation, noDuplication, ...psyncCheckers])).toEqual([])
    // Sequence numbers continue after the restart: no id is reused.
    const ids = sim.history.sent('n2').map((r) => r.id)
    expect(new Set(ids).size).toBe(ids.length)
  })

  it('with retainWaves the live graph stays bounded however long the run', async () => {
    const { sim, conv } = await cluster({ delay: 1, psync: { retainWaves: 4, heldExpiryMs: 50 } })
    const peak: number[] = []
    sim.every(1, 5000, () => {
      for (const n of sim.nodes) conv(n).send(text('x'))
    })
    sim.every(500, 5000, () => void peak.push(sim.host('n1').stats().psync!.liveMessages!))
    await sim.run({ until: 5100 })
    expect(sim.host('n1').stats().psync!.pruned).toBeGreaterThan(10_000)
    expect(Math.max(...peak)).toBeLessThan(200)
    // Restart after pruning: the watermarks come back and the conversation continues.
    sim.crash('n3')
    await sim.restart('n3')
    sim.at(sim.now + 10, () => {
      for (const n of sim.nodes) conv(n).send(text('after'))
    })
    await sim.run({ for: 500 })
    expect(sim.check([noCreation, noDuplication])).toEqual([])
    expect(sim.history.delivered('n3').filter((r) => r.incarnation === 1).length).toBeGreaterThan(3)
  })
})
