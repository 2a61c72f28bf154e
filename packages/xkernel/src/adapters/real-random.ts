/**
 * A `Random` seeded from the operating system, for production hosts. Under `src/adapters/`,
 * the folder the determinism lint rule lets use ambient entropy; the seed is logged so a run
 * can be replayed.
 */
import { getRandomValues } from 'node:crypto'
import { type Random, seededRandom } from '../random.js'

export function systemRandom(): Random {
  const seed = getRandomValues(new Uint32Array(1))[0]!
  return seededRandom(seed)
}
