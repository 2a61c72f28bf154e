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
 * canonical member set (and the configuration, from 1 on).
 */
export function groupTag(port: string, members: readonly NodeId[], configuration = 0): number {
  const base = `${port}\u0000${canonicalMembers(members).join('\u0000')}`
  // Configuration 0 keeps the tag it always had; later ones are other conversations.
  return hashString(configuration === 0 ? base : `${base}\u0001${configuration}`)
}

/** The tag of a port's lobby datagrams (`Lobby`): the same for every configuration. */
export function lobbyTag(port: string): number {
  return hashString(`${port}\u0002lobby`)
}

/** The storage prefix of a protocol's session of a group in a configuration. */
export function sessionScope(protocol: string, port: string, configuration: number): string {
  return configuration === 0 ? `${protocol}/${port}/` : `${protocol}/${port}@${configuration}/`
}
