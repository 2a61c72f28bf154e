/**
 * The hooks Failure Detection and Membership stand on: `onHeard` (evidence of life) and
 * `hold` / `release` (a member's messages parked pending a decision).
 */
import { dist, Simulation } from '@consul/sim'
import {
  groupTag,
  type HeardFrom,
  MessageBuffer,
  PSYNC,
  type PsyncMessage,
  stack,
} from '@consul/xkernel'
import { describe, expect, it } from 'vitest'
import { encodeData, encodeRequest } from '../src/codec.js'
import { psync } from '../src/index.js'

const text = (s: string) => new TextEncoder().encode(s)

async function cluster() {
  const sim = new Simulation({
    seed: 7,
    nodes: 3,
    stack: stack().use(psync({ logEveryMs: 1 })),
    network: { delay: dist.constant(1) },
  })
  await sim.start()
  await sim.openAll({ port: 'g' })
  const conv = (node: string) => sim.host(node).group('g')!.get(PSYNC)
  const delivered = new Map<string, string[]>()
  const waves = new Map<string, string[][]>()
  for (const node of sim.nodes) {
    const list: string[] = []
    const w: string[][] = []
    delivered.set(node, list)
    waves.set(node, w)
    conv(node).onDeliver((m: PsyncMessage) => list.push(m.id))
    conv(node).onWave((_, ms) => w.push(ms.map((m) => m.id)))
  }
  return { sim, conv, delivered, waves }
}

function inject(sim: Simulation, from: string, to: string, frame: Uint8Array) {
  sim.network
    .endpoint(from)
    .send(to, MessageBuffer.fromPayload(frame).pushU32(groupTag('g', sim.nodes)).view())
}

describe('onHeard', () => {
  it('reports every frame heard from a member: new messages, duplicates, held ones, control frames, undecodable ones', async () => {
    const { sim, conv } = await cluster()
    const heard: HeardFrom[] = []
    conv('n1').onHeard((h) => heard.push(h))
    sim.at(5, () => void conv('n2').send(text('a')))
    await sim.run({ until: 30 })
    const first = heard.find((h) => h.kind === 'message')!
    expect(first).toMatchObject({ member: 'n2', message: 'n2:1', lastSeq: 1 })
    expect(first.at).toBeGreaterThanOrEqual(5)
    // A copy of what n1 has; a message whose predecessor n1 lacks; garbage.
    sim.at(40, () => inject(sim, 'n3', 'n1', encodeData(1, 1, [], text('a'))))
    sim.at(41, () => inject(sim, 'n3', 'n1', encodeData(2, 9, [{ member: 2, seq: 8 }], text('z'))))
    sim.at(42, () => inject(sim, 'n3', 'n1', new Uint8Array([0xff, 0xff, 0xff])))
    // n1 speaks; n2 stays silent, so n1 re-sends, and n2 answers with a bare ACK.
    sim.at(50, () => void conv('n1').send(text('b')))
    await sim.run({ until: 600 })
    const fromN3 = heard.filter((h) => h.member === 'n3' && h.at >= 40 && h.at < 45)
    expect(fromN3.map((h) => h.kind)).toEqual(['duplicate', 'held', 'malformed'])
    expect(fromN3[0]!.message).toBe('n2:1')
    expect(fromN3[1]!.message).toBe('n3:9')
    expect(heard.some((h) => h.member === 'n2' && h.kind === 'ack')).toBe(true)
  })
})

describe('hold and release', () => {
  it("parks a member's messages out of every wave until released, then receives them in order", async () => {
    const { sim, conv, delivered, waves } = await cluster()
    let heldAt = -1
    sim.at(1, () => {
      heldAt = conv('n1').hold('n3')
    })
    sim.at(5, () => void conv('n3').send(text('x')))
    sim.at(6, () => void conv('n3').send(text('y')))
    await sim.run({ until: 50 })
    expect(heldAt).toBe(0)
    expect(conv('n1').onHold('n3')).toBe(true)
    expect(delivered.get('n1')).not.toContain('n3:1')
    expect(waves.get('n1')!.flat()).not.toContain('n3:1')
    expect(sim.host('n1').stats().psync!.parkedNow).toBe(2)
    // n2 delivered them and answered: its message depends on n3's, so n1 holds it too.
    expect(delivered.get('n2')).toContain('n3:2')
    sim.at(60, () => conv('n1').release('n3'))
    await sim.run({ until: 120 })
    expect(conv('n1').onHold('n3')).toBe(false)
    expect(delivered.get('n1')!.filter((id) => id.startsWith('n3'))).toEqual(['n3:1', 'n3:2'])
    expect(waves.get('n1')).toEqual(waves.get('n2')!.slice(0, waves.get('n1')!.length))
    expect(sim.host('n1').stats().psync!.parkedNow).toBe(0)
  })

  it('an exclusion decides a hold: parked messages up to the cut count, the rest are void', async () => {
    const { sim, conv, delivered, waves } = await cluster()
    sim.at(1, () => {
      conv('n1').hold('n3')
      conv('n2').hold('n3')
    })
    for (const [t, s] of [
      [5, 'a'],
      [6, 'b'],
      [7, 'c'],
    ] as const)
      sim.at(t, () => void conv('n3').send(text(s)))
    await sim.run({ until: 40 })
    sim.at(41, () => {
      conv('n1').exclude('n3', 1)
      conv('n2').exclude('n3', 1)
    })
    sim.at(45, () => void conv('n1').send(text('after')))
    await sim.run({ until: 150 })
    for (const n of ['n1', 'n2']) {
      const own3 = delivered.get(n)!.filter((id) => id.startsWith('n3'))
      expect(own3).toEqual(['n3:1'])
      expect(conv(n).onHold('n3')).toBe(false)
    }
    expect(waves.get('n1')).toEqual(waves.get('n2'))
    // n3:2 and n3:3 were parked and are void (n3 may have sent more since: void too).
    expect(sim.host('n1').stats().psync!.droppedExcluded).toBeGreaterThanOrEqual(2)
  })

  it('a message of a member not on hold that depends on a parked one brings it in: its sender has it, so any cut covers it (else a vote of the decision would wait for the decision)', async () => {
    const { sim, conv, delivered } = await cluster()
    sim.at(1, () => void conv('n1').hold('n3'))
    sim.at(5, () => void conv('n3').send(text('x')))
    await sim.run({ until: 30 })
    expect(delivered.get('n1')).not.toContain('n3:1')
    // n2 is not on hold at n1: its message builds on n3:1.
    sim.at(31, () => void conv('n2').send(text('vote')))
    await sim.run({ until: 60 })
    expect(delivered.get('n1')).toContain('n3:1')
    expect(delivered.get('n1')).toContain('n2:1')
    expect(sim.host('n1').stats().psync!.unparkedNeeded).toBe(1)
    expect(conv('n1').onHold('n3')).toBe(true)
  })

  it("hold parks the member's messages already waiting for a predecessor: none of its chain gets in once the predecessor comes", async () => {
    const { sim, conv, delivered } = await cluster()
    // n1 gets n3:2 and n3:3 before n3:1 (n3's datagrams to n1 are lost meanwhile), then
    // puts n3 on hold: the held chain n3:3 → n3:2 must not pull itself in once n3:1 comes.
    sim.at(4, () => sim.network.block('n3', 'n1'))
    sim.at(5, () => void conv('n3').send(text('a')))
    sim.at(6, () => void conv('n3').send(text('b')))
    sim.at(7, () => void conv('n3').send(text('c')))
    sim.at(9, () => sim.network.unblock('n3', 'n1'))
    sim.at(10, () => inject(sim, 'n3', 'n1', encodeData(2, 2, [{ member: 2, seq: 1 }], text('b'))))
    sim.at(11, () => inject(sim, 'n3', 'n1', encodeData(2, 3, [{ member: 2, seq: 2 }], text('c'))))
    let heldAt = -1
    sim.at(12.5, () => {
      heldAt = conv('n1').hold('n3')
    })
    await sim.run({ until: 400 })
    expect(heldAt).toBe(0)
    expect(delivered.get('n1')!.filter((id) => id.startsWith('n3'))).toEqual([])
    expect(sim.host('n1').stats().psync!.held).toBe(2)
    expect(sim.host('n1').stats().psync!.parkedNow).toBeGreaterThanOrEqual(3)
  })

  it('a hold taken while delivering (Membership deciding on a message) parks what the same insertion released (regression: campaign seed 5583)', async () => {
    const { sim, conv, delivered } = await cluster()
    // n1 lacks n2:1; it holds n3:1 and then n2:2, both waiting for n2:1. When n2:1 comes,
    // both are released together: delivering n2:2 puts n3 on hold, so n3:1 must wait.
    sim.at(1, () => sim.network.block('n2', 'n1'))
    sim.at(2, () => void conv('n2').send(text('first')))
    sim.at(10, () => void conv('n3').send(text('late')))
    sim.at(10.5, () => void conv('n2').send(text('decide')))
    sim.at(12, () =>
      inject(sim, 'n3', 'n1', encodeData(1, 2, [{ member: 1, seq: 1 }], text('decide'))),
    )
    conv('n1').onDeliver((m) => {
      if (m.id === 'n2:2') conv('n1').hold('n3')
    })
    await sim.run({ until: 300 })
    expect(delivered.get('n1')).toContain('n2:2')
    expect(delivered.get('n1')).not.toContain('n3:1')
    expect(conv('n1').onHold('n3')).toBe(true)
  })

  it("a held member's message that a counting message waits for counts all down its chain: its predecessor is received, not parked (regression: membership campaign swarm seed 188)", async () => {
    const { sim, conv, delivered } = await cluster()
    // n1 lacks n3:1 and holds n3:2 (waiting for it) and n2:1 (waiting for n3:2); then it
    // puts n3 on hold. When n3:1 comes by repair, n2:1 waits for it through n3:2: parking it
    // left n2:1 waiting for the decision, and asking for it again and again.
    sim.at(4, () => sim.network.block('n3', 'n1'))
    sim.at(5, () => void conv('n3').send(text('a')))
    sim.at(6, () => void conv('n3').send(text('b')))
    sim.at(9, () => sim.network.block('n1', 'n3'))
    sim.at(9.5, () => sim.network.unblock('n3', 'n1'))
    sim.at(10, () => inject(sim, 'n3', 'n1', encodeData(2, 2, [{ member: 2, seq: 1 }], text('b'))))
    sim.at(10.5, () => void conv('n2').send(text('vote')))
    sim.at(13, () => void conv('n1').hold('n3'))
    await sim.run({ until: 300 })
    expect(conv('n1').onHold('n3')).toBe(true)
    expect(delivered.get('n1')).toContain('n2:1')
    expect(delivered.get('n1')).toEqual(expect.arrayContaining(['n3:1', 'n3:2']))
  })

  it('a message needed only by a member that is then put on hold too is needed no more: it waits for the decision (regression: membership campaign swarm seed 2096)', async () => {
    const { sim, conv, delivered } = await cluster()
    // n1 holds n3, lacks n3:1, and has n3:2 (waiting for it) only because n2:1, of a member
    // not on hold, waits for n3:2. Then n1 puts n2 on hold too (a ballot naming both): n2 is
    // no acceptor now, so no promise covers what n2 had. Inserting n3:1 when it comes would
    // put it above a cut of 0 (the cut campaign seed 2096 decided, then found delivered).
    sim.at(1, () => void conv('n1').hold('n3'))
    sim.at(2, () => {
      sim.network.block('n3', 'n1')
      sim.network.block('n2', 'n1')
    })
    sim.at(5, () => void conv('n3').send(text('a')))
    sim.at(6, () => void conv('n3').send(text('b')))
    // n2 relays n3:2 and then sends n2:1 on a link open just for them (a relayed message is
    // as good as its sender's), closed again before n1's request for n3:1 can be answered.
    sim.at(9.9, () => sim.network.unblock('n2', 'n1'))
    sim.at(10, () => inject(sim, 'n2', 'n1', encodeData(2, 2, [{ member: 2, seq: 1 }], text('b'))))
    sim.at(10.1, () =>
      inject(sim, 'n2', 'n1', encodeData(1, 1, [{ member: 2, seq: 2 }], text('vote'))),
    )
    sim.at(11.5, () => sim.network.block('n2', 'n1'))
    let heldAt = -1
    sim.at(13, () => {
      heldAt = conv('n1').hold('n2')
    })
    sim.at(20, () => {
      sim.network.unblock('n3', 'n1')
      sim.network.unblock('n2', 'n1')
    })
    await sim.run({ until: 400 })
    expect(sim.host('n1').stats().psync!.unparkedNeeded).toBe(1)
    expect(heldAt).toBe(0)
    expect(delivered.get('n1')!.filter((id) => !id.startsWith('n1'))).toEqual([])
    // Both decisions can still go either way: a release brings everything in, in order.
    conv('n1').release('n2')
    conv('n1').release('n3')
    await sim.run({ until: 800 })
    expect(delivered.get('n1')).toEqual(expect.arrayContaining(['n3:1', 'n3:2', 'n2:1']))
  })

  it('a member that excluded another tells it so when it still talks (at most once per restartRetryMs); the excluded one hears it through onExcluded', async () => {
    const { sim, conv } = await cluster()
    const notices: { by: string; cut: number }[] = []
    conv('n3').onExcluded((n) => void notices.push(n))
    sim.at(1, () => void conv('n3').send(text('counted')))
    await sim.run({ until: 20 })
    sim.at(21, () => {
      conv('n1').exclude('n3', 1)
      conv('n2').exclude('n3', 1)
    })
    // n3 does not know: it goes on sending, every 10 ms.
    sim.every(10, 300, () => void conv('n3').send(text('void')))
    await sim.run({ until: 300 })
    expect(notices.length).toBeGreaterThan(0)
    expect(notices.every((n) => n.cut === 1 && (n.by === 'n1' || n.by === 'n2'))).toBe(true)
    // ~28 void messages from n3 to each of n1 and n2, but at most one notice per 100 ms each.
    const sent = sim.host('n1').stats().psync!.excludedNoticesSent!
    expect(sent).toBeGreaterThanOrEqual(2)
    expect(sent).toBeLessThanOrEqual(3)
    expect(() => conv('n3').onExcluded(42 as never)).toThrow(/onExcluded takes a function/)
  })

  it('an excluded member that keeps asking for messages is answered at most once per restartRetryMs (a member far behind must not make the others re-send without end)', async () => {
    const { sim, conv } = await cluster()
    sim.every(2, 60, () => void conv('n1').send(text('m')))
    await sim.run({ until: 70 })
    sim.at(71, () => {
      conv('n1').exclude('n3', 0)
      conv('n2').exclude('n3', 0)
    })
    await sim.run({ until: 80 })
    const before = sim.host('n1').stats().psync!.retransmitted ?? 0
    // n3 asks n1 for 30 of its messages every 2 ms until 300 ms: about 110 requests.
    const refs = Array.from({ length: 30 }, (_, i) => ({ member: 0, seq: i + 1 }))
    sim.every(2, 300, () => inject(sim, 'n3', 'n1', encodeRequest(refs, [0, 0, 0])))
    await sim.run({ until: 390 })
    const st = sim.host('n1').stats().psync!
    // restartRetryMs is 100: about 3 of them answered, the rest dropped, counted.
    expect(st.excludedRequestsDropped).toBeGreaterThanOrEqual(100)
    expect((st.retransmitted ?? 0) - before).toBeLessThanOrEqual(4 * 30)
    expect((st.retransmitted ?? 0) - before).toBeGreaterThan(0)
  })

  it('sendDirect carries a datagram to one member outside the conversation: not in the graph, not delivered, not logged; heard as direct', async () => {
    const { sim, conv, delivered } = await cluster()
    const got: [string, string][] = []
    const heard: HeardFrom[] = []
    conv('n2').onDirect((from, payload) => void got.push([from, new TextDecoder().decode(payload)]))
    conv('n2').onHeard((h) => void heard.push(h))
    sim.at(1, () => {
      conv('n1').sendDirect('n2', text('hello'))
      conv('n1').sendDirect('n1', text('to myself: nothing'))
    })
    await sim.run({ until: 20 })
    expect(got).toEqual([['n1', 'hello']])
    expect(heard.some((h) => h.kind === 'direct' && h.member === 'n1')).toBe(true)
    for (const node of sim.nodes) expect(delivered.get(node)).toEqual([])
    // n3 listens to nothing: counted, not delivered anywhere.
    sim.at(21, () => conv('n1').sendDirect('n3', text('unheard')))
    await sim.run({ until: 40 })
    expect(sim.host('n3').stats().psync!.directUnheard).toBe(1)
    expect(() => conv('n1').sendDirect('nobody', text('x'))).toThrow(/not a member/)
    expect(() => conv('n1').sendDirect('n2', 'x' as never)).toThrow(/Uint8Array/)
    expect(() => conv('n1').sendDirect('n2', new Uint8Array(2 * 1024 * 1024))).toThrow(
      /exceeds maxPayloadBytes/,
    )
    expect(() => conv('n2').onDirect(1 as never)).toThrow(/onDirect takes a function/)
  })

  it('a message built on a void one is dead, and so is all that builds on it: dropped, never asked for again (regression: membership campaign swarm seeds 1988, 2096)', async () => {
    const { sim, conv, delivered } = await cluster()
    // n1 excludes n3 with cut 1; n2, which has n3:2 and never applied the cut, builds n2:1 on
    // it and n2:2 on n2:1. n1 must refuse both for good — not hold n2:2 and ask n2 for n2:1
    // again and again (the event storm two leaving members fell into).
    sim.at(1, () => void conv('n3').send(text('a')))
    sim.at(3, () => sim.network.block('n3', 'n1'))
    sim.at(4, () => void conv('n3').send(text('b')))
    sim.at(6, () => conv('n1').exclude('n3', 1))
    sim.at(8, () => sim.network.block('n2', 'n1'))
    sim.at(9, () => void conv('n2').send(text('x')))
    sim.at(10, () => sim.network.unblock('n2', 'n1'))
    sim.at(11, () => void conv('n2').send(text('y')))
    await sim.run({ until: 3_000 })
    const stats = sim.host('n1').stats().psync!
    expect(delivered.get('n1')!.filter((id) => id.startsWith('n2'))).toEqual([])
    expect(stats.buried).toBe(1)
    expect(stats.heldNow).toBe(0)
    expect(stats.droppedVoidDep).toBeGreaterThanOrEqual(2)
    // n2:2 was held and its predecessor asked for (before the answer, once more when n2
    // re-sent n2:2); nothing since — without the rule, 101 requests in these 3 s.
    expect(stats.requestsSent ?? 0).toBeLessThanOrEqual(2)
  })

  it('masking out drops what was parked; bad arguments throw', async () => {
    const { sim, conv } = await cluster()
    sim.at(1, () => void conv('n1').hold('n3'))
    sim.at(5, () => void conv('n3').send(text('x')))
    await sim.run({ until: 20 })
    conv('n1').maskOut('n3')
    expect(conv('n1').onHold('n3')).toBe(false)
    expect(sim.host('n1').stats().psync!.parkedNow).toBe(0)
    expect(() => conv('n1').hold('n1')).toThrow(/cannot hold its own messages/)
    expect(() => conv('n1').hold('nobody')).toThrow(/nobody is not a member/)
    expect(() => conv('n1').release('nobody')).toThrow(/not a member/)
    // Releasing a member not on hold is a no-op.
    conv('n1').release('n2')
  })
})
