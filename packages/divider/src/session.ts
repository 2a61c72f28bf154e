/**
 * One Divider session per group: it registers with Psync once, at open (so the replay of
 * Psync's log during start is routed too), and fans out.
 *
 * - A delivered message goes to the `deliver` of every subscription whose channels include
 *   the message's first payload byte, in subscription order; an empty payload (a bare
 *   acknowledgement) to those that asked for acknowledgements. A message nobody subscribed
 *   to is counted (`unrouted`) and otherwise ignored — a protocol this host does not run.
 * - A complete wave goes to the `wave` of every subscription, with the wave's messages on
 *   its channels, in the wave's order — even when none are.
 * - Every frame Psync heard from a member goes to every observer.
 *
 * Invariants (checked by `@consul/divider/checkers` from the trace records): each message
 * Psync delivers is routed exactly once, to exactly the subscribers of its channel; each
 * wave reaches every wave subscriber with exactly its messages on that subscriber's
 * channels. The Divider never sends.
 */
import {
  type Channel,
  type ChannelSubscription,
  channelOf,
  type DividerControl,
  type HeardFrom,
  Listeners,
  PSYNC,
  type PsyncControl,
  type PsyncMessage,
  type SessionContext,
  type TraceRecord,
  type TraceRecords,
  XKernelError,
} from '@consul/xkernel'
import './trace.js'

type DividerRecord = Extract<keyof TraceRecords, `divider.${string}`>

/** One subscription, as the session keeps it. */
export interface Subscriber {
  readonly who: string
  readonly ids: ReadonlySet<number>
  readonly acknowledgements: boolean
  readonly deliver: ((message: PsyncMessage) => void) | undefined
  readonly wave: ((wave: number, messages: readonly PsyncMessage[]) => void) | undefined
}

const channelName = (message: PsyncMessage): string => {
  if (message.payload.length === 0) return ''
  const byte = message.payload[0]!
  return channelOf(byte)?.name ?? `0x${byte.toString(16).padStart(2, '0')}`
}

export class DividerSession {
  readonly control: DividerControl
  protected readonly psync: PsyncControl
  /** Subscribers by first payload byte (copy on write); index 256: acknowledgements. */
  private readonly byByte: Subscriber[][] = Array.from({ length: 257 }, () => [])
  private waveSubscribers: Subscriber[] = []
  private all: Subscriber[] = []
  private readonly observers = new Listeners<[HeardFrom]>(
    () => new XKernelError('INVALID_ARGUMENT', 'observe takes a function'),
  )
  private unobserve: (() => void) | undefined

  constructor(protected readonly ctx: SessionContext<{ psync: PsyncControl }>) {
    this.psync = ctx.get(PSYNC)
    this.psync.onDeliver((m) => this.route(m))
    this.psync.onWave((w, ms) => this.wave(w, ms))
    this.control = {
      subscribe: (who, subscription) => this.subscribe(who, subscription),
      observe: (handler) => {
        const off = this.observers.add(handler)
        // Psync reports hearings only while someone listens: register on the first observer.
        this.unobserve ??= this.psync.onHeard((h) => this.observers.emit(h))
        return off
      },
      subscriptions: () => {
        const out: Record<string, string[]> = {}
        for (const s of this.all) {
          for (const id of s.ids) (out[channelOf(id)!.name] ??= []).push(s.who)
          if (s.acknowledgements) (out['(acknowledgements)'] ??= []).push(s.who)
        }
        return out
      },
    }
  }

  private subscribe(who: string, subscription: ChannelSubscription): () => void {
    if (typeof who !== 'string' || who.length === 0)
      throw new XKernelError('INVALID_ARGUMENT', 'subscribe needs the subscribing protocol name')
    const channels = subscription?.channels
    if (!Array.isArray(channels) || channels.length === 0)
      throw new XKernelError('INVALID_ARGUMENT', `${who}: subscribe needs at least one channel`)
    for (const c of channels as readonly Channel[]) {
      if (channelOf(c?.id) !== c)
        throw new XKernelError(
          'INVALID_ARGUMENT',
          `${who}: channel ${JSON.stringify(c)} is not registered (create it with defineChannel)`,
        )
    }
    const { deliver, wave } = subscription
    if (deliver !== undefined && typeof deliver !== 'function')
      throw new XKernelError('INVALID_ARGUMENT', `${who}: deliver must be a function`)
    if (wave !== undefined && typeof wave !== 'function')
      throw new XKernelError('INVALID_ARGUMENT', `${who}: wave must be a function`)
    if (deliver === undefined && wave === undefined)
      throw new XKernelError('INVALID_ARGUMENT', `${who}: subscribe needs deliver or wave`)
    const s: Subscriber = {
      who,
      ids: new Set(channels.map((c) => c.id)),
      acknowledgements: subscription.acknowledgements === true,
      deliver,
      wave,
    }
    this.all = [...this.all, s]
    this.rebuild()
    if (this.ctx.events.has('trace.record')) {
      this.record('divider.subscribed', {
        who,
        channels: channels.map((c) => c.name),
        acknowledgements: s.acknowledgements,
        deliver: deliver !== undefined,
        wave: wave !== undefined,
      })
    }
    return () => {
      if (!this.all.includes(s)) return
      this.all = this.all.filter((x) => x !== s)
      this.rebuild()
      if (this.ctx.events.has('trace.record')) {
        this.record('divider.unsubscribed', { who })
      }
    }
  }

  private rebuild(): void {
    for (let b = 0; b < 257; b++) {
      this.byByte[b] = this.all.filter(
        (s) => s.deliver !== undefined && (b === 256 ? s.acknowledgements : s.ids.has(b)),
      )
    }
    this.waveSubscribers = this.all.filter((s) => s.wave !== undefined)
  }

  /** The `deliver` subscribers of first byte `byte` (256: bare acknowledgements). */
  protected subscribersFor(byte: number): readonly Subscriber[] {
    return this.byByte[byte]!
  }

  /** Hands `message` to the subscribers of its channel. */
  protected route(message: PsyncMessage): void {
    const list = this.subscribersFor(message.payload.length === 0 ? 256 : message.payload[0]!)
    if (list.length === 0) this.ctx.counters.inc('unrouted')
    else this.ctx.counters.inc('routed')
    if (this.ctx.events.has('trace.record')) {
      this.record('divider.routed', {
        id: message.id,
        from: message.sender,
        channel: channelName(message),
        to: list.map((s) => s.who),
      })
    }
    for (const s of list) s.deliver!(message)
  }

  /** Hands wave `wave` to every wave subscriber, with its messages on the subscriber's channels. */
  protected wave(wave: number, messages: readonly PsyncMessage[]): void {
    const subscribers = this.waveSubscribers
    if (subscribers.length === 0) return
    const traced = this.ctx.events.has('trace.record')
    const to: { who: string; ids: string[] }[] = []
    for (const s of subscribers) {
      const mine = messages.filter((m) =>
        m.payload.length === 0 ? s.acknowledgements : s.ids.has(m.payload[0]!),
      )
      if (traced) to.push({ who: s.who, ids: mine.map((m) => m.id) })
      s.wave!(wave, mine)
    }
    if (traced) {
      this.record('divider.wave', { wave, to })
    }
  }

  /** Raises one of the Divider's declared trace records (`trace.ts`). */
  private record<K extends DividerRecord>(kind: K, data: TraceRecords[K]): void {
    this.ctx.events.emit('trace.record', {
      kind,
      group: this.ctx.group.port,
      layer: 'divider',
      data,
    } as TraceRecord)
  }

  close(): void {
    this.unobserve?.()
  }
}
