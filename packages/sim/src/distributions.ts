/**
 * Delay distributions for simulated links and disks. Each is a plain description (so a
 * swarm run can print the environment it drew) sampled with the simulation's `Random`.
 */
import type { Random } from '@consul/xkernel'

export type Distribution =
  | { readonly kind: 'constant'; readonly ms: number }
  | { readonly kind: 'uniform'; readonly min: number; readonly max: number }
  | { readonly kind: 'exponential'; readonly min: number; readonly mean: number }
  | { readonly kind: 'normal'; readonly mean: number; readonly sd: number; readonly min: number }
  /** Pareto tail above `min`: most samples near `min`, a few very late ones. */
  | { readonly kind: 'pareto'; readonly min: number; readonly alpha: number; readonly max: number }

export const dist = {
  constant: (ms: number): Distribution => ({ kind: 'constant', ms: check(ms, 'ms') }),
  uniform: (min: number, max: number): Distribution => {
    check(min, 'min')
    if (!(max >= min))
      throw new RangeError(`uniform(min, max) needs max >= min, got ${min}, ${max}`)
    return { kind: 'uniform', min, max }
  },
  exponential: (mean: number, min = 0): Distribution => ({
    kind: 'exponential',
    mean: check(mean, 'mean'),
    min: check(min, 'min'),
  }),
  normal: (mean: number, sd: number, min = 0): Distribution => ({
    kind: 'normal',
    mean: check(mean, 'mean'),
    sd: check(sd, 'sd'),
    min: check(min, 'min'),
  }),
  pareto: (min: number, alpha = 1.5, max = min * 1000): Distribution => {
    if (!(alpha > 0)) throw new RangeError(`pareto alpha must be > 0, got ${alpha}`)
    return { kind: 'pareto', min: check(min, 'min'), alpha, max: check(max, 'max') }
  },
}

function check(value: number, name: string): number {
  if (!Number.isFinite(value) || value < 0) {
    throw new RangeError(`${name} must be a finite number >= 0, got ${value}`)
  }
  return value
}

export function sample(d: Distribution, random: Random): number {
  switch (d.kind) {
    case 'constant':
      return d.ms
    case 'uniform':
      return d.min + random.next() * (d.max - d.min)
    case 'exponential':
      return d.min - d.mean * Math.log(1 - random.next())
    case 'normal': {
      // Box–Muller; one draw per sample keeps the stream simple to replay.
      const u = 1 - random.next()
      const v = random.next()
      const z = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v)
      return Math.max(d.min, d.mean + d.sd * z)
    }
    case 'pareto':
      return Math.min(d.max, d.min / (1 - random.next()) ** (1 / d.alpha))
  }
}

export function describeDistribution(d: Distribution): string {
  switch (d.kind) {
    case 'constant':
      return `${d.ms}ms`
    case 'uniform':
      return `U(${d.min},${d.max})ms`
    case 'exponential':
      return `${d.min}+Exp(${d.mean})ms`
    case 'normal':
      return `N(${d.mean},${d.sd})ms`
    case 'pareto':
      return `Pareto(${d.min},α=${d.alpha})ms`
  }
}
