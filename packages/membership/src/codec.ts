/**
 * Membership's messages, ordinary Psync messages on `MEMBERSHIP_CHANNEL`:
 * `channel · version · kind · instance (uvarint) · body`. Members travel as their index in
 * the group's canonical (sorted) member list; `instance` numbers the decisions (one per view
 * change), so a message about an earlier decision is recognised and ignored.
 *
 * | kind | body | meaning |
 * |---|---|---|
 * | `down` | member · deaf | "I suspect it": silent, or (`deaf`) speaking but acknowledging nothing of ours |
 * | `ackDown` | member | "I have nothing newer from it than your `down` has" |
 * | `nackDown` | member | "I hold a message of it your `down` did not have: it is slow, not dead" (a silent down; a deaf one is nacked only by the member itself) |
 * | `propose` | round · set | phase 1 of a ballot (`round`, the sender's rank): "exclude this set" |
 * | `promise` | round · rank · holds · accepted? | phase 1 answer: the highest seq of each member of the set held here, the value accepted so far |
 * | `accept` | round · set · value | phase 2: the value (the set and each member's cut) |
 * | `accepted` | round · rank | phase 2 answer |
 * | `up` | member | "I am up again" — sent by the member itself after a restart, once Recovery has replayed |
 * | `ackUp` | member | "I hear you": every other member of the view answers an `up` |
 * | `leave` | member | "I leave the group" — sent by the member itself (`leave()`); every other member answers `ackDown` |
 *
 * Decoding checks every index against the member count and every length against the
 * payload; anything else throws `DecodeError` (the session counts it and drops it).
 */
import {
  DecodeError,
  MEMBERSHIP_CHANNEL,
  readUvarint,
  uvarintLength,
  writeUvarint,
} from '@consul/xkernel'

const VERSION = 1

export const KIND = {
  down: 1,
  ackDown: 2,
  nackDown: 3,
  propose: 4,
  promise: 5,
  accept: 6,
  accepted: 7,
  up: 8,
  ackUp: 9,
  leave: 10,
} as const

/** A ballot: `round` (from 1) and the proposer's rank (its canonical index); compared in that order. */
export interface Ballot {
  readonly round: number
  readonly rank: number
}

/** What a decision decides: the members excluded and each one's cut (same order). */
export interface Value {
  readonly members: readonly number[]
  readonly cuts: readonly number[]
}

export type MembershipMessage =
  | {
      readonly kind: 'down'
      readonly instance: number
      readonly member: number
      /** The suspicion is not silence but deafness: it speaks, yet acknowledges nothing of ours. */
      readonly deaf: boolean
    }
  | {
      readonly kind: 'ackDown' | 'nackDown' | 'up' | 'ackUp' | 'leave'
      readonly instance: number
      readonly member: number
    }
  | {
      readonly kind: 'propose'
      readonly instance: number
      readonly round: number
      readonly set: readonly number[]
    }
  | {
      readonly kind: 'promise'
      readonly instance: number
      readonly ballot: Ballot
      /** Member index → the highest seq of it inserted here when promising. */
      readonly holds: readonly (readonly [number, number])[]
      readonly accepted:
        | { readonly ballot: Ballot; readonly set: readonly number[]; readonly value: Value }
        | undefined
    }
  | {
      readonly kind: 'accept'
      readonly instance: number
      readonly round: number
      /** The ballot's set: its acceptors are every member of the view outside it. */
      readonly set: readonly number[]
      readonly value: Value
    }
  | { readonly kind: 'accepted'; readonly instance: number; readonly ballot: Ballot }

export function compareBallots(a: Ballot, b: Ballot): number {
  return a.round - b.round || a.rank - b.rank
}

class Writer {
  private readonly parts: number[] = []
  uint(value: number): this {
    this.parts.push(value)
    return this
  }
  list(values: readonly number[]): this {
    this.parts.push(values.length, ...values)
    return this
  }
  bytes(kind: number, instance: number): Uint8Array {
    let length = 3 + uvarintLength(instance)
    for (const v of this.parts) length += uvarintLength(v)
    const out = new Uint8Array(length)
    out[0] = MEMBERSHIP_CHANNEL.id
    out[1] = VERSION
    out[2] = kind
    let at = writeUvarint(out, 3, instance)
    for (const v of this.parts) at = writeUvarint(out, at, v)
    return out
  }
}

class Reader {
  private at: number
  private readonly read = { length: 0 }
  constructor(
    private readonly bytes: Uint8Array,
    start: number,
    private readonly members: number,
  ) {
    this.at = start
  }
  uint(): number {
    const v = readUvarint(this.bytes, this.at, this.bytes.length, this.read)
    this.at += this.read.length
    return v
  }
  member(): number {
    const v = this.uint()
    if (v >= this.members) throw new DecodeError('INVALID', `member index ${v} of ${this.members}`)
    return v
  }
  members_(): number[] {
    const n = this.uint()
    if (n > this.members) throw new DecodeError('INVALID', `set of ${n} members of ${this.members}`)
    const out: number[] = []
    for (let i = 0; i < n; i++) {
      const m = this.member()
      if (out.includes(m)) throw new DecodeError('INVALID', `member ${m} twice in a set`)
      out.push(m)
    }
    return out
  }
  value(): Value {
    const members = this.members_()
    return { members, cuts: members.map(() => this.uint()) }
  }
  end(): void {
    if (this.at !== this.bytes.length) throw new DecodeError('INVALID', 'trailing bytes')
  }
}

function writeValue(w: Writer, value: Value): void {
  w.list(value.members)
  for (const c of value.cuts) w.uint(c)
}

export function encode(message: MembershipMessage): Uint8Array {
  const w = new Writer()
  switch (message.kind) {
    case 'down':
      w.uint(message.member).uint(message.deaf ? 1 : 0)
      break
    case 'ackDown':
    case 'nackDown':
    case 'up':
    case 'ackUp':
    case 'leave':
      w.uint(message.member)
      break
    case 'propose':
      w.uint(message.round).list(message.set)
      break
    case 'promise':
      w.uint(message.ballot.round).uint(message.ballot.rank).uint(message.holds.length)
      for (const [m, seq] of message.holds) w.uint(m).uint(seq)
      if (message.accepted === undefined) w.uint(0)
      else {
        w.uint(1).uint(message.accepted.ballot.round).uint(message.accepted.ballot.rank)
        w.list(message.accepted.set)
        writeValue(w, message.accepted.value)
      }
      break
    case 'accept':
      w.uint(message.round).list(message.set)
      writeValue(w, message.value)
      break
    case 'accepted':
      w.uint(message.ballot.round).uint(message.ballot.rank)
      break
  }
  return w.bytes(KIND[message.kind], message.instance)
}

/** Decodes a Membership payload of a group of `members` members; throws `DecodeError`. */
export function decode(payload: Uint8Array, members: number): MembershipMessage {
  if (payload.length < 4 || payload[0] !== MEMBERSHIP_CHANNEL.id)
    throw new DecodeError('INVALID', 'not a membership message')
  if (payload[1] !== VERSION)
    throw new DecodeError('INVALID', `membership message version ${payload[1]}`)
  const kind = payload[2]
  const r = new Reader(payload, 3, members)
  const instance = r.uint()
  let out: MembershipMessage
  switch (kind) {
    case KIND.down: {
      const member = r.member()
      const flag = r.uint()
      if (flag > 1) throw new DecodeError('INVALID', `down flag ${flag}`)
      out = { kind: 'down', instance, member, deaf: flag === 1 }
      break
    }
    case KIND.ackDown:
    case KIND.nackDown:
      out = { kind: kind === KIND.ackDown ? 'ackDown' : 'nackDown', instance, member: r.member() }
      break
    case KIND.propose: {
      const round = r.uint()
      if (round < 1) throw new DecodeError('INVALID', 'propose round 0')
      out = { kind: 'propose', instance, round, set: r.members_() }
      break
    }
    case KIND.promise: {
      const ballot = { round: r.uint(), rank: r.member() }
      const n = r.uint()
      if (n > members) throw new DecodeError('INVALID', `${n} holds of ${members} members`)
      const holds: [number, number][] = []
      for (let i = 0; i < n; i++) holds.push([r.member(), r.uint()])
      const flag = r.uint()
      if (flag > 1) throw new DecodeError('INVALID', `promise flag ${flag}`)
      const accepted =
        flag === 0
          ? undefined
          : { ballot: { round: r.uint(), rank: r.member() }, set: r.members_(), value: r.value() }
      out = { kind: 'promise', instance, ballot, holds, accepted }
      break
    }
    case KIND.accept: {
      const round = r.uint()
      out = { kind: 'accept', instance, round, set: r.members_(), value: r.value() }
      break
    }
    case KIND.accepted:
      out = { kind: 'accepted', instance, ballot: { round: r.uint(), rank: r.member() } }
      break
    case KIND.up:
    case KIND.ackUp:
      out = { kind: kind === KIND.up ? 'up' : 'ackUp', instance, member: r.member() }
      break
    case KIND.leave:
      out = { kind: 'leave', instance, member: r.member() }
      break
    default:
      throw new DecodeError('INVALID', `membership message kind ${String(kind)}`)
  }
  r.end()
  return out
}
