/** A small RESP2/RESP3 reply decoder for tests: bytes in, values out (errors as `{ error }`). */

export type Value =
  | string
  | number
  | bigint
  | boolean
  | null
  | { error: string }
  | { map: [Value, Value][] }
  | { set: Value[] }
  | Value[]

/** Decodes every complete reply in `bytes`; throws if the last one is cut. */
export function decodeReplies(bytes: Buffer): Value[] {
  let at = 0
  const lineEnd = () => {
    const end = bytes.indexOf('\r\n', at)
    if (end < 0) throw new Error(`a reply cut short at ${at}`)
    const text = bytes.toString('utf8', at + 1, end)
    return { text, next: end + 2 }
  }
  const one = (): Value => {
    const kind = String.fromCharCode(bytes[at]!)
    const { text, next } = lineEnd()
    at = next
    switch (kind) {
      case '+':
        return text
      case '-':
        return { error: text }
      case ':':
        return Number.isSafeInteger(Number(text)) ? Number(text) : BigInt(text)
      case '$':
      case '=': {
        const n = Number(text)
        if (n < 0) return null
        const s = bytes.toString('utf8', at, at + n)
        at += n + 2
        return kind === '=' ? s.slice(4) : s
      }
      case '_':
        return null
      case '#':
        return text === 't'
      case '*':
      case '~': {
        const n = Number(text)
        if (n < 0) return null
        const items: Value[] = []
        for (let i = 0; i < n; i++) items.push(one())
        return kind === '~' ? { set: items } : items
      }
      case '%': {
        const n = Number(text)
        const entries: [Value, Value][] = []
        for (let i = 0; i < n; i++) entries.push([one(), one()])
        return { map: entries }
      }
      default:
        throw new Error(`unknown reply type ${JSON.stringify(kind)} at ${at}`)
    }
  }
  const out: Value[] = []
  while (at < bytes.length) out.push(one())
  return out
}

/** One command as RESP bytes. */
export const command = (...words: string[]) =>
  Buffer.from(
    `*${words.length}\r\n${words.map((w) => `$${Buffer.byteLength(w)}\r\n${w}\r\n`).join('')}`,
  )
