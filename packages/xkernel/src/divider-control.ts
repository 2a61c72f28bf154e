/**
 * The Divider's control interface (`@consul/divider` provides it): how a protocol takes its
 * incoming messages. Psync hands every delivered message and every complete wave to the
 * Divider, which passes each message to the protocols subscribed to its channel (one message
 * may go to several) and each wave to every subscriber with the wave's messages on its
 * channels. Observers see every datagram heard from a member. The Divider never touches
 * outgoing messages: a protocol sends through Psync with its channel's byte first.
 */
import { capability } from './capability.js'
import type { Channel } from './channels.js'
import type { HeardFrom, PsyncMessage } from './psync-control.js'

export interface ChannelSubscription {
  /** The channels to receive (at least one). */
  readonly channels: readonly Channel[]
  /**
   * Also receive empty payloads — bare acknowledgements, which have no channel (an Order that
   * counts every member's last message, e.g. for a clock horizon). Default false.
   */
  readonly acknowledgements?: boolean
  /** Each message on these channels, in Psync's causal delivery order. */
  readonly deliver?: (message: PsyncMessage) => void
  /**
   * Each complete wave, in order and none skipped, with its messages on these channels (in
   * the wave's order; possibly none): a wave is reported even when it holds nothing for the
   * subscriber, so an Order sees every wave number.
   */
  readonly wave?: (wave: number, messages: readonly PsyncMessage[]) => void
}

export interface DividerControl {
  /**
   * Subscribes `who` (a protocol's name, for `describe()` and trace records) to channels;
   * returns a function that ends the subscription. Throws `XKernelError('INVALID_ARGUMENT')`
   * for no channel, a channel not registered with `defineChannel`, or no handler at all.
   * Subscribe at open: the replay of Psync's log during start is delivered then.
   */
  subscribe(who: string, subscription: ChannelSubscription): () => void
  /**
   * Observes every frame heard from a member (Failure Detection's evidence of life), as
   * `PsyncControl.onHeard` reports it. Runs on the receive path: keep it cheap.
   */
  observe(handler: (heard: HeardFrom) => void): () => void
  /** Who is subscribed to what: channel name → protocol names. */
  subscriptions(): Readonly<Record<string, readonly string[]>>
}

export const DIVIDER = capability<'divider', DividerControl>('divider')
