/**
 * The key file format the applications share (`consul-directory`, `consul-tuple-space`): a
 * single key, or a keyring a rotation edits. Pure: the caller reads the file.
 */
import { UdpTransportError } from './errors.js'
import type { GroupKey } from './integrity.js'

const RING_LINE = /^(\d{1,3}):((?:[0-9a-fA-F]{2})+)$/
const MIN_KEY_BYTES = 16

/**
 * The keyring in a key file's bytes, for `udp({ keys })` and `setKeys`:
 *
 * - **a keyring**: lines `<id>:<hex key>` (id 0–255, each key ≥ 16 bytes; blank lines and
 *   `#` comments skipped) — what a rotation edits: add the new id on every member, reload,
 *   wait until no peer is behind (`keys.peersBehind`), drop the old id, reload;
 * - **a single key** (id 0): the file's text as hex (whitespace around it ignored), or else
 *   its raw bytes. A raw key whose first line happens to read `<digits>:` would be taken for
 *   a keyring: give such a key in hex.
 *
 * Throws `UdpTransportError('INVALID_KEY')` naming the line that is wrong (a keyring) or the
 * size (a single key under 16 bytes). Returns keys sorted by id, copied.
 */
export function readKeyring(contents: Uint8Array): GroupKey[] {
  if (!(contents instanceof Uint8Array))
    throw new UdpTransportError('INVALID_KEY', 'readKeyring takes the file contents as bytes')
  const text = new TextDecoder().decode(contents)
  const lines = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.length > 0 && !l.startsWith('#'))
  if (!/^\d{1,3}:/.test(lines[0] ?? '')) {
    const trimmed = text.trim()
    const key = /^(?:[0-9a-fA-F]{2})+$/.test(trimmed)
      ? Uint8Array.from(Buffer.from(trimmed, 'hex'))
      : Uint8Array.from(contents)
    if (key.byteLength < MIN_KEY_BYTES)
      throw new UdpTransportError('INVALID_KEY', 'the group key must be at least 16 bytes')
    return [{ id: 0, key }]
  }
  const ring: GroupKey[] = []
  for (const [i, line] of lines.entries()) {
    const m = RING_LINE.exec(line)
    const where = `key file line ${i + 1}`
    if (m === null) throw new UdpTransportError('INVALID_KEY', `${where}: not <id>:<hex key>`)
    const id = Number(m[1])
    const key = Uint8Array.from(Buffer.from(m[2]!, 'hex'))
    if (id > 255) throw new UdpTransportError('INVALID_KEY', `${where}: key id ${id} is over 255`)
    if (key.byteLength < MIN_KEY_BYTES)
      throw new UdpTransportError('INVALID_KEY', `${where}: the key must be at least 16 bytes`)
    if (ring.some((k) => k.id === id))
      throw new UdpTransportError('INVALID_KEY', `${where}: key id ${id} appears twice`)
    ring.push({ id, key })
  }
  return ring.sort((a, b) => a.id - b.id)
}
