/**
 * Member lists are sets. Every host of a group must agree on each member's position in the
 * list — Psync names members by index on the wire — so the list is put in one canonical order
 * (sorted by UTF-16 code units, the same on every platform) whatever order the caller wrote
 * it in, and the group's wire tag covers the set: hosts that disagree on the members cannot
 * exchange a single datagram of the group, instead of misattributing messages.
 */
import { hashString } from './random.js'
import type { NodeId } from './transport.js'

/** The members in canonical order (a new array; the input is not changed). */
export function canonicalMembers(members: readonly NodeId[]): NodeId[] {
  return [...members].sort()
}

/**
 * The 4-byte tag every datagram of a group starts with: a hash of the port name and the
 * canonical member set.
 */
export function groupTag(port: string, members: readonly NodeId[]): number {
  return hashString(`${port}\u0000${canonicalMembers(members).join('\u0000')}`)
}
