/**
 * Where a sender's message ids start: random, so a restarted sender does not reuse the ids of
 * its previous run's messages. Under `src/adapters/` because it draws the operating system's
 * entropy, which the determinism lint rule keeps out of everything else.
 */
import { randomBytes } from 'node:crypto'

export function randomFirstMessageId(): number {
  return randomBytes(4).readUInt32BE(0)
}
