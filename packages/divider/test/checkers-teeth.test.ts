/** Each Divider checker rejects a Divider broken the way it is meant to catch. */
import { MEMBERSHIP_CHANNEL, OPERATIONS, type PsyncMessage } from '@consul/xkernel'
import { describe, expect, it } from 'vitest'
import { dividerRouting, dividerWaves } from '../src/checkers.js'
import { DividerSession, type Subscriber } from '../src/session.js'
import { cluster, dividerWith, probe } from './fixtures.js'

const on = (channel: { id: number }, text: string) =>
  new Uint8Array([channel.id, ...new TextEncoder().encode(text)])

class DropsEveryFifth extends DividerSession {
  private n = 0
  protected override route(message: PsyncMessage): void {
    if (++this.n % 5 !== 0) super.route(message)
  }
}

class RoutesTwice extends DividerSession {
  protected override route(message: PsyncMessage): void {
    super.route(message)
    if (message.seq === 2) super.route(message)
  }
}

/** A wrong routing table: membership messages go to the operations subscribers. */
class Misroutes extends DividerSession {
  protected override subscribersFor(byte: number): readonly Subscriber[] {
    return super.subscribersFor(byte === MEMBERSHIP_CHANNEL.id ? OPERATIONS.id : byte)
  }
}

class UnfilteredWaves extends DividerSession {
  protected override wave(wave: number, messages: readonly PsyncMessage[]): void {
    // Hands every subscriber the whole wave by pretending all are acknowledgements-free ops.
    super.wave(
      wave,
      messages.map((m) => (m.payload.length > 0 ? { ...m, payload: on(OPERATIONS, 'x') } : m)),
    )
  }
}

class SkipsAWave extends DividerSession {
  protected override wave(wave: number, messages: readonly PsyncMessage[]): void {
    if (wave !== 2) super.wave(wave, messages)
  }
}

async function run(Session: typeof DividerSession) {
  const { sim, conv } = await cluster(
    (l) => [
      probe('order', [OPERATIONS], l, { acknowledgements: true }),
      probe('membership', [MEMBERSHIP_CHANNEL], l),
    ],
    { dividerFactory: dividerWith(Session as never) as never },
  )
  for (let i = 0; i < 15; i++) {
    const channel = i % 3 === 0 ? MEMBERSHIP_CHANNEL : OPERATIONS
    sim.at(1 + i * 3, () => void conv(sim.nodes[i % 3]!).send(on(channel, `m${i}`)))
  }
  await sim.run({ until: 500 })
  return sim
}

describe('divider checkers have teeth', () => {
  it('the real Divider passes both', async () => {
    const sim = await run(DividerSession)
    expect(sim.check([dividerRouting, dividerWaves])).toEqual([])
  })
  it('routing rejects a Divider that drops messages', async () => {
    const v = (await run(DropsEveryFifth)).check([dividerRouting])
    expect(v.some((x) => /routed it 0 time/.test(x.message))).toBe(true)
  })
  it('routing rejects a Divider that routes a message twice', async () => {
    const v = (await run(RoutesTwice)).check([dividerRouting])
    expect(v.some((x) => /routed it 2 time/.test(x.message))).toBe(true)
  })
  it('routing rejects a Divider that hands a message to the wrong subscribers', async () => {
    const v = (await run(Misroutes)).check([dividerRouting])
    expect(v.some((x) => /its subscribers are/.test(x.message))).toBe(true)
  })
  it("waves rejects a Divider that hands out messages not on a subscriber's channels", async () => {
    const v = (await run(UnfilteredWaves)).check([dividerWaves])
    expect(v.some((x) => /its messages on/.test(x.message))).toBe(true)
  })
  it('waves rejects a Divider that skips a wave', async () => {
    const v = (await run(SkipsAWave)).check([dividerWaves])
    expect(v.some((x) => /wave 2 never handed out/.test(x.message))).toBe(true)
  })
})
