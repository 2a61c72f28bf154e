import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { hashString, type Random, seededRandom, systemRandom } from '../src/index.js'

function draw(random: Random, n: number): number[] {
  return Array.from({ length: n }, () => random.uint32())
}

/** Pearson's chi-square statistic of `counts` against a uniform expectation. */
function chiSquare(counts: readonly number[]): number {
  const total = counts.reduce((a, b) => a + b, 0)
  const expected = total / counts.length
  return counts.reduce((sum, c) => sum + (c - expected) ** 2 / expected, 0)
}

describe('seededRandom', () => {
  it('gives the same sequence for the same seed', () => {
    fc.assert(
      fc.property(fc.integer(), (seed) => {
        expect(draw(seededRandom(seed), 50)).toEqual(draw(seededRandom(seed), 50))
      }),
      { numRuns: 200 },
    )
  })

  it('gives different sequences for different seeds', () => {
    fc.assert(
      fc.property(fc.integer(), fc.integer(), (a, b) => {
        fc.pre(a >>> 0 !== b >>> 0)
        expect(draw(seededRandom(a), 4)).not.toEqual(draw(seededRandom(b), 4))
      }),
      { numRuns: 500 },
    )
  })

  it('matches an independent xoshiro128** / splitmix32 implementation (replays stay valid)', () => {
    // Computed with a separate Python implementation of the generator.
    expect(draw(seededRandom(0), 5)).toEqual([
      3809008728, 1133695204, 53579671, 2891528803, 139681546,
    ])
    expect(draw(seededRandom(1), 5)).toEqual([
      2442144158, 3238099751, 3819917871, 2104621829, 2021136066,
    ])
    expect(draw(seededRandom(42), 5)).toEqual([
      2837322924, 544945897, 479756282, 3500138142, 339756180,
    ])
  })

  it('takes the seed modulo 2^32 and reports it', () => {
    expect(seededRandom(-1).seed).toBe(0xffff_ffff)
    expect(seededRandom(2 ** 32 + 5).seed).toBe(5)
    expect(draw(seededRandom(2 ** 32 + 5), 5)).toEqual(draw(seededRandom(5), 5))
  })

  it('keeps next() in [0, 1) and uint32() in [0, 2^32)', () => {
    const random = seededRandom(7)
    let sum = 0
    for (let i = 0; i < 20_000; i++) {
      const x = random.next()
      expect(x >= 0 && x < 1).toBe(true)
      sum += x
      const u = random.uint32()
      expect(Number.isInteger(u) && u >= 0 && u < 2 ** 32).toBe(true)
    }
    // Mean of 20 000 uniforms: standard deviation ~0.002, so 0.02 is ten sigmas.
    expect(Math.abs(sum / 20_000 - 0.5)).toBeLessThan(0.02)
  })

  it('rejects a seed that is not an integer with RangeError', () => {
    for (const seed of [1.5, Number.NaN, Number.POSITIVE_INFINITY, '1' as unknown as number]) {
      expect(() => seededRandom(seed)).toThrow(RangeError)
    }
  })
})

describe('fork', () => {
  it('is deterministic: the same seed and label give the same stream', () => {
    fc.assert(
      fc.property(fc.integer(), fc.string(), (seed, label) => {
        expect(draw(seededRandom(seed).fork(label), 20)).toEqual(
          draw(seededRandom(seed).fork(label), 20),
        )
      }),
      { numRuns: 300 },
    )
    const fork = seededRandom(42).fork('x')
    expect(fork.seed).toBe(580216175)
    expect(draw(fork, 3)).toEqual([2816421112, 3646641269, 1632159247])
  })

  it('does not advance the parent, and does not depend on how far it has advanced', () => {
    fc.assert(
      fc.property(fc.integer(), fc.array(fc.string(), { maxLength: 5 }), (seed, labels) => {
        const plain = seededRandom(seed)
        const forked = seededRandom(seed)
        const first = labels.map((label) => draw(forked.fork(label), 3))
        expect(draw(forked, 10)).toEqual(draw(plain, 10))
        // Forking later (after draws) gives the same child streams.
        expect(labels.map((label) => draw(forked.fork(label), 3))).toEqual(first)
      }),
      { numRuns: 300 },
    )
  })

  it('gives independent streams for different labels and differs from the parent', () => {
    const parent = seededRandom(3)
    const a = draw(parent.fork('psync/g1'), 8)
    const b = draw(parent.fork('psync/g2'), 8)
    expect(a).not.toEqual(b)
    expect(a).not.toEqual(draw(seededRandom(3), 8))
    expect(draw(parent.fork('psync/g1').fork('inner'), 8)).not.toEqual(a)
  })
})

describe('int', () => {
  it('stays in [0, max) for any valid max', () => {
    fc.assert(
      fc.property(fc.integer(), fc.integer({ min: 1, max: 2 ** 32 }), (seed, max) => {
        const random = seededRandom(seed)
        for (let i = 0; i < 20; i++) {
          const x = random.int(max)
          expect(Number.isInteger(x) && x >= 0 && x < max).toBe(true)
        }
      }),
      { numRuns: 500 },
    )
    expect(seededRandom(1).int(1)).toBe(0)
  })

  it('is roughly uniform (chi-square, fixed seeds: deterministic, cannot flake)', () => {
    for (const seed of [1, 2, 3]) {
      const random = seededRandom(seed)
      const counts = new Array<number>(10).fill(0)
      for (let i = 0; i < 50_000; i++) counts[random.int(10)]!++
      // 9 degrees of freedom: P(chi2 > 40) < 1e-5 for a uniform source.
      expect(chiSquare(counts)).toBeLessThan(40)
    }
  })

  it('has no modulo bias for a max that does not divide 2^32', () => {
    // With max = 3·2^30, plain `uint32 % max` would put half the draws in the first third.
    const max = 3 * 2 ** 30
    const random = seededRandom(9)
    const thirds = [0, 0, 0]
    for (let i = 0; i < 30_000; i++) thirds[Math.floor(random.int(max) / 2 ** 30)]!++
    // 2 degrees of freedom: P(chi2 > 25) < 4e-6; a biased generator scores ~2500.
    expect(chiSquare(thirds)).toBeLessThan(25)
  })

  it('rejects a max that is not an integer in 1..2^32 with RangeError', () => {
    const random = seededRandom(1)
    for (const max of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 32 + 1]) {
      expect(() => random.int(max)).toThrow(RangeError)
    }
    expect(random.int(2 ** 32)).toBeLessThan(2 ** 32)
  })
})

describe('hashString', () => {
  it('is 32-bit FNV-1a over UTF-16 code units', () => {
    expect(hashString('')).toBe(0x811c9dc5)
    expect(hashString('a')).toBe(0xe40c292c)
    expect(hashString('a', 1)).not.toBe(hashString('a'))
  })
})

describe('systemRandom', () => {
  it('is a seeded generator whose seed replays it', () => {
    const random = systemRandom()
    const replay = seededRandom(random.seed)
    expect(draw(random, 5)).toEqual(draw(replay, 5))
  })
})
