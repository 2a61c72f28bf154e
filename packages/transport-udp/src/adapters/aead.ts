/**
 * AEAD sealing of datagrams (AES-256-GCM or ChaCha20-Poly1305 from `node:crypto`), the
 * encrypted alternative to the HMAC trailer: the body is encrypted in place, the whole header
 * is the associated data, and the 16-byte tag is the trailer.
 *
 * Nonces: the 12 bytes `epoch (u48) ‖ counter (u48)` of the header, under a key derived for
 * each (group key, sender) pair with HKDF-SHA-256, so members sharing the group key never
 * share a nonce space.
 *
 * Invariant: a (derived key, nonce) pair seals at most one datagram, because a sender's
 * epoch grows at every start and its counter at every datagram (the outbox refuses to wrap
 * it). Tags are always exactly 16 bytes: `authTagLength` is fixed, so a truncated tag is a
 * wrong tag, never a shorter accepted one.
 *
 * Under `src/adapters/` because it is built on `node:crypto`.
 */
import {
  type CipherGCM,
  createCipheriv,
  createDecipheriv,
  createSecretKey,
  type DecipherGCM,
  hkdfSync,
  type KeyObject,
} from 'node:crypto'

export const AEAD_TAG_BYTES = 16

/** A derived per-sender key, prepared once. */
export type AeadKey = KeyObject

export type AeadCipher = 'aes-256-gcm' | 'chacha20-poly1305'
export const AEAD_CIPHERS: readonly AeadCipher[] = ['aes-256-gcm', 'chacha20-poly1305']

const SALT = new TextEncoder().encode('consul transport-udp v2 aead')

/** The key `sender` seals with under the group key `key` (32 bytes, HKDF-SHA-256). */
export function senderKey(key: Uint8Array, cipher: AeadCipher, senderId: number): KeyObject {
  const info = new Uint8Array(cipher.length + 4)
  info.set(new TextEncoder().encode(cipher))
  new DataView(info.buffer).setUint32(cipher.length, senderId)
  return createSecretKey(new Uint8Array(hkdfSync('sha256', key, SALT, info, 32)))
}

/**
 * Encrypts `data[headerBytes, length)` in place, authenticating `data[0, headerBytes)`, and
 * writes the tag at `data[length, length + 16)`. `nonce` is a view of the header.
 */
export function aeadSeal(
  cipher: AeadCipher,
  key: KeyObject,
  nonce: Uint8Array,
  data: Uint8Array,
  headerBytes: number,
  length: number,
): void {
  const c = createCipheriv(cipher, key, nonce, {
    authTagLength: AEAD_TAG_BYTES,
  } as never) as unknown as CipherGCM
  c.setAAD(data.subarray(0, headerBytes))
  data.set(c.update(data.subarray(headerBytes, length)), headerBytes)
  c.final()
  data.set(c.getAuthTag(), length)
}

/**
 * Checks the tag at the end of `data` and, only when it is right, decrypts the body in
 * place. Never throws: a wrong tag (or any failure of the cipher) is `false`, and `data` is
 * then unchanged.
 */
export function aeadOpen(
  cipher: AeadCipher,
  key: KeyObject,
  nonce: Uint8Array,
  data: Uint8Array,
  headerBytes: number,
): boolean {
  const end = data.length - AEAD_TAG_BYTES
  if (end < headerBytes) return false
  try {
    const d = createDecipheriv(cipher, key, nonce, {
      authTagLength: AEAD_TAG_BYTES,
    } as never) as unknown as DecipherGCM
    d.setAAD(data.subarray(0, headerBytes))
    d.setAuthTag(data.subarray(end))
    const plain = d.update(data.subarray(headerBytes, end))
    d.final()
    data.set(plain, headerBytes)
    return true
  } catch {
    return false
  }
}
