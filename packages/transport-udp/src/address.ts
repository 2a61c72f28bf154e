/**
 * IP address literals in options. Peers are configured by address, not name: no DNS at
 * start, and the receiver can compare a datagram's source with the configured address as
 * plain strings. So every configured address is brought to the form Node reports for a
 * datagram's source (`rinfo.address`): dotted decimal for IPv4, RFC 5952 lowercase
 * compressed text for IPv6.
 *
 * Invariant: `parseIpLiteral` returns that canonical form or `undefined`; it accepts no host
 * names, no IPv6 zone ids (`fe80::1%eth0`) and no IPv4-mapped or IPv4-compatible IPv6
 * addresses (Node prints those in dotted form, which would never match).
 */

export type IpFamily = 4 | 6

export interface IpLiteral {
  readonly address: string
  readonly family: IpFamily
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/
const IPV6_CHARS = /^[0-9a-fA-F:.]+$/
// After canonicalization, what Node would print as `::a.b.c.d` or `::ffff:a.b.c.d`.
const IPV4_IN_IPV6 = /^::(ffff:)?[0-9a-f]{1,4}:[0-9a-f]{1,4}$/

export function parseIpLiteral(host: string): IpLiteral | undefined {
  if (IPV4.test(host)) return { address: host, family: 4 }
  if (!host.includes(':') || !IPV6_CHARS.test(host)) return undefined
  let hostname: string
  try {
    hostname = new URL(`http://[${host}]/`).hostname
  } catch {
    return undefined
  }
  const address = hostname.slice(1, -1)
  if (IPV4_IN_IPV6.test(address)) return undefined
  return { address, family: 6 }
}

/** Whether `address` (canonical) is an IP multicast group address. */
export function isMulticast(ip: IpLiteral): boolean {
  if (ip.family === 6) return ip.address.startsWith('ff')
  const first = Number(ip.address.slice(0, ip.address.indexOf('.')))
  return first >= 224 && first <= 239
}
