/** Builds datagrams by hand (valid or deliberately wrong) for tests. */
import { writeBundleEntry } from '../src/bundler.js'
import { FLAG_AUTHENTICATED, FLAG_FRAGMENT, HEADER_BYTES, writeHeader } from '../src/codec.js'
import { FRAGMENT_HEADER_BYTES, writeFragmentHeader } from '../src/fragments.js'
import { integrityFor } from '../src/integrity.js'
import { senderIdOf } from '../src/options.js'

export interface CraftOptions {
  readonly key?: Uint8Array | undefined
  readonly groupId?: number
  readonly sender: string
  /** Overrides the flags (default: the integrity mode, plus fragment for fragments). */
  readonly flags?: number
}

/** A sealed datagram around `body` (a raw body: no checks on it). */
export function sealBody(body: Uint8Array, options: CraftOptions, fragment = false): Uint8Array {
  const integrity = integrityFor(options.key)
  const out = new Uint8Array(HEADER_BYTES + body.length + integrity.trailerBytes)
  const flags =
    options.flags ??
    (integrity.authenticated ? FLAG_AUTHENTICATED : 0) | (fragment ? FLAG_FRAGMENT : 0)
  writeHeader(out, flags, options.groupId ?? 0, senderIdOf(options.sender))
  out.set(body, HEADER_BYTES)
  integrity.seal(out, HEADER_BYTES + body.length)
  return out
}

/** A sealed bundle datagram carrying `messages`. */
export function bundleDatagram(messages: Uint8Array[], options: CraftOptions): Uint8Array {
  const body = new Uint8Array(messages.reduce((n, m) => n + 2 + m.length, 0))
  let at = 0
  for (const m of messages) at = writeBundleEntry(body, at, m)
  return sealBody(body, options)
}

/** A sealed fragment datagram. */
export function fragmentDatagram(
  fields: { messageId: number; total: number; chunkSize: number; index: number; chunk: Uint8Array },
  options: CraftOptions,
): Uint8Array {
  const body = new Uint8Array(FRAGMENT_HEADER_BYTES + fields.chunk.length)
  writeFragmentHeader(body, 0, fields.messageId, fields.total, fields.chunkSize, fields.index)
  body.set(fields.chunk, FRAGMENT_HEADER_BYTES)
  return sealBody(body, options, true)
}
