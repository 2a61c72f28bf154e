/**
 * The Order specification, version `v2` (and `v1`, still accepted): what an Order protocol
 * gets from Psync and the Divider, and what it gives the layer above (the Dispatcher, or an
 * application). Consul ships a total order (`@consul/order-total`) and a semantic-dependent
 * order (`@consul/order-semantic`); anyone can publish another and prove it with
 * `@consul/testkit/order`.
 *
 * ## What an Order gets
 *
 * A **v2** Order requires `psync` (`PsyncControl`) and `divider` (`DividerControl`). It takes
 * its incoming messages through the Divider — `divider.subscribe(name, { channels:
 * [OPERATIONS], deliver, wave, acknowledgements? })`, at open, so the replay after a restart
 * is seen — and multicasts through `psync.send(payload)`; from Psync it also uses `precedes`,
 * `stable`, `onStable`, `durable`, `onDurable`, `waveFloor`, `waveComplete` and `members()`.
 * The Divider hands it only messages on its channels (bare acknowledgements only if it asked
 * for them) and every complete wave, in order, with the wave's messages on its channels —
 * also waves that hold none, so the never-skip-a-wave rule below sees every wave number.
 *
 * A **v1** Order (the specification before the Divider) requires `psync` only and reads
 * `psync.onDeliver` / `psync.onWave` itself: it sees every message, and must ignore those on
 * other channels (other protocols' monitoring messages) and empty ones, except as
 * acknowledgements. v1 Orders keep working unchanged next to a Divider — nothing else
 * differs between the versions, and `@consul/testkit/order` checks both (its reference
 * implementation and broken Orders are v1). Moving a v1 Order to v2: require `DIVIDER`,
 * replace `psync.onDeliver`/`psync.onWave` with one `divider.subscribe`, drop the channel
 * filtering, report `specificationVersion: 'v2'`, and pass the suite a `divider` factory.
 *
 * - Payload framing: the first byte of a Psync payload is its *channel* (`defineChannel` in
 *   `./channels.ts`). Order protocols use `ORDER_CHANNEL` (0x4f, "O"; the `OPERATIONS`
 *   channel) for command-bearing messages and may send empty payloads as acknowledgements.
 * - Membership: an Order learns of **agreed** membership-list changes only through Psync —
 *   `members()` and the waves Psync completes against the agreed list (Membership calls
 *   `psync.exclude(p, cut)` at the same logical point everywhere). It must never act on
 *   suspicion alone.
 * - Primary partition: an Order observes `membership.primary` (Membership raises it; without
 *   Membership in the stack nobody does) and orders only in the primary partition. On
 *   `'minority'` it refuses new submits with an error coded `'NO_PRIMARY'` naming the group
 *   and the view (the command is not sent) and keeps the pending ones: they may still be
 *   ordered once the partition heals. On `'primary'` it accepts submits again. On
 *   `'excluded'` (final for the session) it refuses new submits likewise and rejects every
 *   pending one with `'NO_PRIMARY'` too: whether the primary ordered it is unknown here.
 *   (`followPrimary` and `CommandBatcher.primary` in `@consul/xkernel/order`.) A refusal of a
 *   command that was never sent should carry `notApplied: true` (`OrderError`'s option;
 *   `CommandBatcher` sets it), which `notApplied(error)` reads.
 * - Restart: after a crash Psync re-delivers its log (`restored: true`) and completes again
 *   every wave above its prune floor; an Order restored from a checkpoint skips what the
 *   checkpoint covers. **Waves are never skipped**: an Order that is shown a wave above the
 *   one it expects (its log was pruned above its checkpoint, or it restarted without one
 *   after pruning) cannot deliver what it missed, so it stops — every later `submit` rejects
 *   with an error coded `'WAVE_GAP'` naming the waves, a `waveGaps` counter and an error log —
 *   instead of delivering a sequence that differs from the others'. (`WaveSequence` in
 *   `@consul/xkernel/order`.)
 * - Durability: Psync delivers an own message at once but puts it on the wire only once it is
 *   durable (`psync.durable(id)`, `psync.onDurable`). **An Order may count an own message
 *   toward anything — delivering its commands here, acknowledging them, stability, a clock
 *   horizon — only once Psync reports it durable**: before that a crash takes it away (the
 *   restarted member sends other content under its id), and a checkpoint taken meanwhile
 *   would keep commands the group never sees. (Waves already count own messages only once
 *   durable.)
 *
 * ## What an Order gives
 *
 * - `submit(command, { level })`: multicasts a command and resolves with its `OrderedCommand`
 *   (rejects with an error carrying a `code` — the shipped Orders' `OrderError` — if the
 *   Order closes or stops first, or outside the primary partition: `NO_PRIMARY`). Two levels, as Spread's AGREED and SAFE services:
 *   - `'agreed'`: resolves once the command is delivered here in order. Delivery is agreed but
 *     **not uniform**: a member about to be excluded (cut off by a partition) may deliver its
 *     own last commands — sent just before the cut, so nobody else has them — and the agreed
 *     cut then discards them. A crash does not take an agreed command away (it was durable
 *     before it was delivered); an exclusion may.
 *   - `'safe'` (the default): resolves once the command is delivered here in order **and** its
 *     Psync message is stable — every member of the agreed list holds it durably — so it
 *     reaches every replica of every later view: what anything that answers a client uses.
 *   An unknown level rejects with `INVALID_ARGUMENT`.
 * - `onDeliver(handler)`: every command, own ones included, in the Order's order. Each is
 *   delivered exactly once per incarnation (after `restore`, only those after the checkpoint).
 * - `position()`: how far delivery has gone — `wave`, a Psync depth (every command carried by a
 *   message of depth below it has been delivered here; nothing deeper is guaranteed), and
 *   `delivered` (commands so far, checkpoints included). Checkpointing uses `wave` as the
 *   prune floor, so it must be a depth in Psync's graph, not a clock of the Order's own.
 * - `checkpoint()` / `restore(bytes)`: the Order's own state at a wave boundary, for the
 *   coordinated checkpoint (all protocols plus the application snapshot in one storage
 *   batch). `checkpoint()` throws unless `atWaveBoundary()` is true.
 * - `semantics`: `'total'` (every replica delivers the same sequence) or `'semantic'` (every
 *   pair of non-commuting commands is delivered in the same relative order everywhere).
 *
 * ## Building blocks
 *
 * Orders may use the helpers of `@consul/xkernel/order` (`src/order.ts`): `CommandBatcher`
 * (submit queue, one Psync message per event-loop turn, promises settled per delivery level:
 * on delivery, or on delivery and stability), `Acknowledger` (the empty-acknowledgement rule
 * that lets waves complete when a member has nothing to send), `WaveSequence` (the
 * never-skip-a-wave rule), `followPrimary` (the primary-partition rule), `resolveOrderOptions` (`ackDelayMs`, `maxBatch`, `maxBatchBytes`),
 * `encodeCommandBatch` / `decodeCommandBatch` for the framing and `OrderError`; all three
 * shipped Orders do. This file holds only the specification, which other protocols and
 * applications see too.
 *
 * ## Guarantees every Order keeps, v1 and v2 (checked by `@consul/testkit/order`)
 *
 * Agreement (per `semantics`), no duplication, no creation, causal order (a command is
 * delivered after every command in its causal past), liveness once faults heal, validity
 * (every `'safe'` acknowledgement reaches every replica of the final view; every `'agreed'`
 * one too unless its submitter was excluded), durability (a crash takes no acknowledged
 * command away), membership-list changes taking effect at the same point everywhere, equal
 * delivered sets at every wave boundary, a checkpoint / restore round trip that continues
 * with the same deliveries, and all of it with Psync pruning its log.
 *
 * Not required: uniform `'agreed'` delivery (above). Agreement holds among the members that
 * stay; an excluded member's history from its first delivery of a command the cut discarded
 * on is its own, as a crashed member's is.
 */
import { capability } from './capability.js'
import { OPERATIONS } from './channels.js'
import type { MessageId } from './psync-control.js'
import type { NodeId } from './transport.js'

/** First payload byte of command-bearing Psync messages. */
export const ORDER_CHANNEL: number = OPERATIONS.id

export interface OrderPosition {
  /** A Psync depth: every command of the messages below it has been delivered. */
  readonly wave: number
  /** Commands delivered so far (including those a restored checkpoint covers). */
  readonly delivered: number
}

export interface OrderedCommand {
  /** `<psync message id>/<index in the message>`: unique in the group. */
  readonly id: string
  /** The Psync message that carried it. */
  readonly message: MessageId
  readonly sender: NodeId
  readonly command: Uint8Array
  /** Position right after this command. */
  readonly position: OrderPosition
  /** Delivered again after a restart (replay from the log). */
  readonly restored: boolean
}

/** When `submit` resolves: see the specification above. */
export type DeliveryLevel = 'agreed' | 'safe'

export interface SubmitOptions {
  /** `'safe'` (default): delivered here and stable; `'agreed'`: delivered here. */
  readonly level?: DeliveryLevel
}

export interface OrderControl {
  /** `'v2'`: takes its messages through the Divider; `'v1'`: from Psync directly (above). */
  readonly specificationVersion: 'v1' | 'v2'
  readonly semantics: 'total' | 'semantic'
  submit(command: Uint8Array, options?: SubmitOptions): Promise<OrderedCommand>
  onDeliver(handler: (command: OrderedCommand) => void): () => void
  position(): OrderPosition
  /** True when no command of a later wave has been delivered past the current position. */
  atWaveBoundary(): boolean
  checkpoint(): Uint8Array
  restore(checkpoint: Uint8Array): void
  /**
   * Optional (what a group needs for joins, `@consul/recovery`): from now on, deliver nothing
   * of a wave above `wave` — early deliveries included — until called again with a higher
   * wave or `undefined` (then what waited is delivered, in order). Recovery calls it when it
   * sees a join request of wave `wave`, so that the group moves into its next configuration
   * exactly at the end of that wave. A wave that is not an integer >= -1 throws
   * `OrderError('INVALID_ARGUMENT')`. An Order without it cannot take part in joins.
   */
  holdAfter?(wave: number | undefined): void
}

export const ORDER = capability<'order', OrderControl>('order')
