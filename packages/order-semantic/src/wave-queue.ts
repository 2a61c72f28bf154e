/**
 * The semantic-dependent delivery rules, kept apart from Psync and timers so they can be read
 * (and tested) on their own. Two modes, one per way the application describes commutativity.
 *
 * **Classes** (`classOf`). Every command has the key `(wave, rank, sender, seq, index)`: its
 * Psync message's depth, its class rank, the sender's id, the message's sequence number (a
 * sender has at most one message per wave, so this only breaks ties that cannot happen) and
 * its index in the message. Commands of the same rank commute; of different ranks they do
 * not. The queue delivers so that every non-commuting pair goes in key order everywhere:
 *
 * - Waves go in order. Let `W` be the first wave not completely delivered; every command of
 *   the waves below `W` has been delivered, and Psync has reported those waves complete.
 * - **Early delivery.** A rank-0 command of wave `W` is delivered as soon as its message is
 *   here (an own message: as soon as it is known to be durable, see `confirm`). Nothing that
 *   does not commute with it sorts before it: a non-commuting command has a rank > 0, so it
 *   sorts before only if its wave is < `W`, and all of those are delivered. Nothing that does
 *   not commute with it and sorts after it has been delivered yet: commands of rank > 0 of
 *   wave `W` and every command of a wave > `W` wait for wave `W` to complete.
 * - **At completion.** Once Psync reports wave `W` complete, its contents are final and the
 *   same at every replica (Psync's wave agreement); the queue delivers its remaining commands
 *   in key order, then moves to `W + 1`. A command of rank r > 0 cannot go earlier: until the
 *   wave is complete, a member that has not yet sent a message of depth ≥ `W` may still add
 *   a command of a lower rank to it, which must run first.
 *
 * **Keys** (`keysOf`, `senders` given). The key is `(wave, sender, seq, index)` (every rank
 * is 0) and two commands conflict as `keys.ts` says. A sender has **passed** wave `W` here
 * once a message of it of depth ≥ `W` has been delivered here (an own one: once durable):
 * Psync delivers causally and a sender's messages form a chain of increasing depth, so from
 * then on its wave-`W` message, if it has one, is here, and it will never send another.
 * **Early delivery**: a command `c` of wave `W` from sender `s` goes as soon as its message is
 * confirmed, every sender sorting before `s` has passed `W`, and no undelivered command that
 * sorts before `c` in wave `W` conflicts with it (the walk in `keyedEarly`). Then every
 * command that sorts before `c` and conflicts with it is known and delivered. By the same
 * rule applied to a later conflicting `d`, `d` cannot go before `c`: `c` sorts before it, is
 * known (its sender passed `W`) and undelivered. Later waves wait for `W` to complete, and at
 * completion the rest goes in key order: an early `c` had every conflicting predecessor
 * delivered before it, so the rest holds no conflicting predecessor of it.
 *
 * Causal order holds without further work: a message of depth `W` has only messages of depth
 * < `W` in its causal past, all delivered, and messages of one wave are pairwise concurrent.
 */
import type { MessageId, NodeId, PsyncMessage } from '@consul/xkernel'
import { type Access, Blockers } from './keys.js'

export interface WaveCommand {
  /** `<message id>/<index>` */
  readonly id: string
  readonly message: PsyncMessage
  readonly index: number
  readonly command: Uint8Array
  /** The class rank (0 for every command in the key mode). */
  readonly rank: number
  /** What it touches (the key mode only). */
  readonly access?: Access
  /** Set by the queue when it hands the command out (start with `false`). */
  delivered: boolean
}

export interface NextCommand {
  readonly command: WaveCommand
  readonly wave: number
  /** Delivered before its wave was complete. */
  readonly early: boolean
}

/** A command-bearing message in the queue. */
export interface Entry {
  readonly message: PsyncMessage
  /** Valid commands only, in index order. */
  readonly commands: readonly WaveCommand[]
  /** Its commands may go early (remote, replayed, or an own message known to be durable). */
  confirmed: boolean
  /** Next command to consider for early delivery. */
  earlyCursor: number
}

/** Key order inside one wave: rank, then sender id, then seq, then index. */
export function compareKey(a: WaveCommand, b: WaveCommand): number {
  if (a.rank !== b.rank) return a.rank - b.rank
  if (a.message.sender !== b.message.sender) return a.message.sender < b.message.sender ? -1 : 1
  if (a.message.seq !== b.message.seq) return a.message.seq - b.message.seq
  return a.index - b.index
}

export class WaveQueue {
  /**
   * The key mode: every member of the conversation, in key order (`compareKey`'s sender
   * order). `undefined`: the class mode.
   */
  private readonly senders: readonly NodeId[] | undefined
  /** Key mode: the deepest message of each sender delivered here (own ones: durable). */
  private readonly passed = new Map<NodeId, number>()
  /** Key mode: commands the last walk found deliverable, handed out in order. */
  private early: WaveCommand[] = []
  private earlyAt = 0
  /** Key mode: something changed since the last walk (a message, a confirmation, a wave). */
  private dirty = true
  private current = 0
  /** Command-bearing messages by wave (≥ current), in the causal order they arrived. */
  protected readonly entries = new Map<number, Entry[]>()
  private readonly byId = new Map<MessageId, Entry>()
  private readonly pendingOwn = new Set<MessageId>()
  /** Waves Psync reported complete, with the ids of their messages. */
  private readonly completed = new Map<number, ReadonlySet<MessageId>>()
  /** The current wave's remaining key order, once it is complete. */
  private completion: WaveCommand[] | undefined
  private cursor = 0
  /**
   * Commands of the current wave delivered so far. Which ones is each command's `delivered`
   * flag: a command is one object from `add` to delivery, and a flag is far cheaper than a set
   * of thousands of entries rebuilt every wave.
   */
  private deliveredNow = 0
  /** Early-delivered commands whose message was missing from the completed wave. */
  readonly lost: WaveCommand[] = []
  /**
   * Set when Psync reported a wave complete before the current one: the waves between can
   * never be delivered any more (its log was pruned above the restored checkpoint). The
   * queue then delivers nothing more — the session stops the Order.
   */
  gap: { readonly expected: number; readonly reported: number } | undefined
  /** `OrderControl.holdAfter`: nothing of a wave above it goes, early or not. */
  barrier: number | undefined

  constructor(options: { readonly senders?: readonly NodeId[] } = {}) {
    this.senders =
      options.senders === undefined
        ? undefined
        : [...new Set(options.senders)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
  }

  /** The key mode. */
  get keyed(): boolean {
    return this.senders !== undefined
  }

  /**
   * Key mode: a message of `sender` of this depth was delivered here (for an own message:
   * it is durable). Bare acknowledgements count: they are what tells that a sender passed a
   * wave without a command in it.
   */
  reached(sender: NodeId, depth: number): void {
    const before = this.passed.get(sender) ?? -1
    if (depth <= before) return
    this.passed.set(sender, depth)
    if (depth >= this.current) this.dirty = true
  }

  /** The first wave not completely delivered. */
  get wave(): number {
    return this.current
  }

  /** Commands of waves ≥ `wave` delivered so far (0 exactly at a wave boundary). */
  get ahead(): number {
    return this.deliveredNow
  }

  has(id: MessageId): boolean {
    return this.byId.has(id)
  }

  /** Adds a command-bearing message of wave `message.depth` (ignored below the current wave). */
  add(message: PsyncMessage, commands: readonly WaveCommand[], confirmed: boolean): void {
    if (message.depth < this.current || this.byId.has(message.id)) return
    const entry: Entry = { message, commands, confirmed, earlyCursor: 0 }
    this.byId.set(message.id, entry)
    if (!confirmed) this.pendingOwn.add(message.id)
    let list = this.entries.get(message.depth)
    if (list === undefined) this.entries.set(message.depth, (list = []))
    list.push(entry)
    if (message.depth === this.current) this.dirty = true
  }

  /** Own messages not yet known to be durable; `confirm` them once they are. */
  unconfirmed(): ReadonlySet<MessageId> {
    return this.pendingOwn
  }

  confirm(id: MessageId): void {
    const entry = this.byId.get(id)
    if (entry !== undefined) {
      entry.confirmed = true
      this.dirty = true
    }
    this.pendingOwn.delete(id)
  }

  /** Psync reported `wave` complete with exactly these messages. */
  complete(wave: number, ids: readonly MessageId[]): void {
    if (wave < this.current) return
    this.completed.set(wave, new Set(ids))
  }

  /** Moves to `wave` (a restored checkpoint): everything below it counts as delivered. */
  skipTo(wave: number): void {
    if (wave <= this.current) return
    for (const w of [...this.entries.keys()]) if (w < wave) this.dropWave(w)
    for (const w of [...this.completed.keys()]) if (w < wave) this.completed.delete(w)
    this.current = wave
    this.completion = undefined
    this.cursor = 0
    this.deliveredNow = 0
    this.resetEarly()
  }

  /**
   * The next command to deliver under the rule, marked delivered; `undefined` when nothing
   * can go now. Call it again after each delivery: a handler may have changed the state.
   */
  next(): NextCommand | undefined {
    if (this.gap !== undefined) return undefined
    for (;;) {
      const wave = this.current
      if (this.barrier !== undefined && wave > this.barrier) return undefined
      if (this.completion === undefined) {
        const ids = this.completed.get(wave)
        if (ids === undefined && this.completed.size > 0) {
          // Psync reports waves in order, so a later wave reported before this one means
          // this one never will be: nothing of the gap can be delivered any more, and
          // delivering past it would break agreement.
          this.gap = { expected: wave, reported: Math.min(...this.completed.keys()) }
          return undefined
        }
        if (ids !== undefined) this.completion = this.orderOf(wave, ids)
      }
      if (this.completion !== undefined) {
        while (this.cursor < this.completion.length) {
          const command = this.completion[this.cursor++]!
          if (command.delivered) continue
          command.delivered = true
          this.deliveredNow++
          return { command, wave, early: false }
        }
        this.dropWave(wave)
        this.completed.delete(wave)
        this.current = wave + 1
        this.completion = undefined
        this.cursor = 0
        this.deliveredNow = 0
        this.resetEarly()
        continue
      }
      if (this.senders !== undefined) {
        if (this.earlyAt >= this.early.length && this.dirty) {
          this.dirty = false
          this.early = this.keyedEarly(wave, this.senders)
          this.earlyAt = 0
        }
        while (this.earlyAt < this.early.length) {
          const command = this.early[this.earlyAt++]!
          if (command.delivered) continue
          command.delivered = true
          this.deliveredNow++
          return { command, wave, early: true }
        }
        return undefined
      }
      for (const entry of this.entries.get(wave) ?? []) {
        if (!entry.confirmed) continue
        while (entry.earlyCursor < entry.commands.length) {
          const command = entry.commands[entry.earlyCursor++]!
          if (command.rank !== 0 || command.delivered) continue
          command.delivered = true
          this.deliveredNow++
          return { command, wave, early: true }
        }
      }
      return undefined
    }
  }

  /**
   * Key mode: the commands of wave `wave` that may go now, in key order. Walks the senders in
   * key order, each sender's commands in index order, collecting the undelivered ones of
   * confirmed messages that conflict with no undelivered command before them; stops after the
   * first sender that has not passed the wave (a later sender's command might sort after a
   * command of it not yet here). What it returns stays deliverable until handed out: nothing
   * can be added before the stop, and deliveries only remove blockers.
   */
  protected keyedEarly(wave: number, senders: readonly NodeId[]): WaveCommand[] {
    const out: WaveCommand[] = []
    const list = this.entries.get(wave)
    if (list === undefined || list.length === 0) return out
    const bySender = new Map<NodeId, Entry[]>()
    for (const entry of list) {
      const of = bySender.get(entry.message.sender)
      if (of === undefined) bySender.set(entry.message.sender, [entry])
      else {
        of.push(entry)
        of.sort((a, b) => a.message.seq - b.message.seq)
      }
    }
    const blockers = new Blockers()
    for (const sender of senders) {
      for (const entry of bySender.get(sender) ?? []) {
        for (const command of entry.commands) {
          if (command.delivered) continue
          const access = command.access!
          if (entry.confirmed && !blockers.conflicts(access)) out.push(command)
          else blockers.add(access)
        }
      }
      if ((this.passed.get(sender) ?? -1) < wave) break
    }
    return out
  }

  private resetEarly(): void {
    this.early = []
    this.earlyAt = 0
    this.dirty = true
  }

  /** The complete wave's commands in key order; notes early deliveries it does not contain. */
  private orderOf(wave: number, ids: ReadonlySet<MessageId>): WaveCommand[] {
    const out: WaveCommand[] = []
    for (const entry of this.entries.get(wave) ?? []) {
      if (ids.has(entry.message.id)) out.push(...entry.commands)
      else for (const c of entry.commands) if (c.delivered) this.lost.push(c)
    }
    return out.sort(compareKey)
  }

  private dropWave(wave: number): void {
    for (const entry of this.entries.get(wave) ?? []) {
      this.byId.delete(entry.message.id)
      this.pendingOwn.delete(entry.message.id)
    }
    this.entries.delete(wave)
  }
}
