/**
 * Membership's options, checked at the factory: a bad value throws
 * `XKernelError('INVALID_ARGUMENT')` naming the option.
 */
import { XKernelError } from '@consul/xkernel'

export interface MembershipOptions {
  /**
   * How long a decision round may stay open before its coordinator starts a new ballot (a
   * participant that crashed meanwhile is suspected by then and joins the set), and how long
   * a `nackDown` keeps a member from being reported again while Failure Detection still
   * suspects it (ms). Default 300.
   */
  readonly retryAfterMs?: number
  /**
   * How long a member waits for evidence before it acknowledges a *deaf* `down(q)` — a
   * report that `q` has not acknowledged the reporter's messages — while it hears `q` itself
   * (ms). Evidence is a message of `q` that has the `down` in its causal past (`q` heard the
   * accusation, so it is not deaf to the accuser): then it answers `nackDown`. Default 100.
   */
  readonly deafProofMs?: number
  /** How often the session re-examines its state: retries, reports, the primary test (ms). Default 20. */
  readonly tickMs?: number
}

export interface ResolvedOptions {
  readonly retryAfterMs: number
  readonly deafProofMs: number
  readonly tickMs: number
}

function positive(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0)
    throw new XKernelError(
      'INVALID_ARGUMENT',
      `membership option ${name} must be a positive number of milliseconds, got ${String(value)}`,
    )
  return value
}

export function resolveOptions(options: MembershipOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null)
    throw new XKernelError('INVALID_ARGUMENT', 'membership options must be an object')
  const known = new Set(['retryAfterMs', 'deafProofMs', 'tickMs'])
  for (const key of Object.keys(options))
    if (!known.has(key))
      throw new XKernelError('INVALID_ARGUMENT', `unknown membership option ${key}`)
  return {
    retryAfterMs: positive('retryAfterMs', options.retryAfterMs, 300),
    deafProofMs: positive('deafProofMs', options.deafProofMs, 100),
    tickMs: positive('tickMs', options.tickMs, 20),
  }
}
