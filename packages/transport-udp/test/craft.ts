/** Builds datagrams by hand (valid or deliberately wrong) for tests. */
import { writeBundleEntry } from '../src/bundler.js'
import { FLAG_FRAGMENT, HEADER_BYTES, writeHeader, writeSequence } from '../src/codec.js'
import { FRAGMENT_HEADER_BYTES, writeFragmentHeader } from '../src/fragments.js'
import { type GroupKey, integrityFor } from '../src/integrity.js'
import { senderIdOf } from '../src/options.js'

export interface CraftOptions {
  readonly key?: Uint8Array | readonly GroupKey[] | undefined
  /** Seal with AEAD (AES-256-GCM) instead of the HMAC. */
  readonly encrypt?: boolean
  readonly groupId?: number
  readonly sender: string
  /** Overrides the flags (default: the integrity mode, plus fragment for fragments). */
  readonly flags?: number
  /** Default 1 (the fake cluster's default epoch). */
  readonly epoch?: number
  /** Default: the next of a counter shared by all crafted datagrams, from 1,000,000. */
  readonly counter?: number
  /** The key id sealed with (default: the first of `key`, or 0). */
  readonly keyId?: number
  /** The newest key id advertised (default: `keyId`). */
  readonly newestKeyId?: number
}

let nextCounter = 1_000_000

/** A sealed datagram around `body` (a raw body: no checks on it). */
export function sealBody(body: Uint8Array, options: CraftOptions, fragment = false): Uint8Array {
  const integrity = integrityFor(options.key, options.encrypt === true ? 'aes-256-gcm' : false)
  const out = new Uint8Array(HEADER_BYTES + body.length + integrity.trailerBytes)
  const flags = options.flags ?? integrity.flags | (fragment ? FLAG_FRAGMENT : 0)
  const senderId = senderIdOf(options.sender)
  writeHeader(out, flags, options.groupId ?? 0, senderId)
  const keyId = options.keyId ?? integrity.keyIds()[0] ?? 0
  writeSequence(
    out,
    keyId,
    options.newestKeyId ?? keyId,
    options.epoch ?? 1,
    options.counter ?? nextCounter++,
  )
  out.set(body, HEADER_BYTES)
  integrity.seal(out, HEADER_BYTES + body.length, senderId)
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
