/**
 * Validation of a history at the API edge: every malformed operation is reported with its
 * index and what to give instead, before any search starts, so a broken recorder shows up as
 * a clear `LinearizabilityError('INVALID_HISTORY')` rather than as a verdict.
 */
import { LinearizabilityError } from './errors.js'
import type { Operation } from './model.js'

/** An operation's interval once checked: `return` is `Infinity` when the outcome is unknown. */
export interface Interval {
  readonly call: number
  readonly return: number
  readonly known: boolean
}

export function checkHistory<Input, Output>(
  history: unknown,
  validate?: (operation: Operation<Input, Output>) => string | undefined,
): Interval[] {
  if (!Array.isArray(history))
    throw invalid(`the history must be an array of operations (got ${typeName(history)})`)
  const seen = new Set<unknown>()
  // Array.from, not map: a hole in a sparse array is reported, not skipped.
  return Array.from(history as unknown[], (operation: unknown, index): Interval => {
    const where = `operation #${index}`
    if (typeof operation !== 'object' || operation === null)
      throw invalid(`${where} is ${typeName(operation)}, not an operation object`)
    if (seen.has(operation))
      throw invalid(`${where} is the same object as an earlier one: give each operation its own`)
    seen.add(operation)
    const { clientId, call } = operation as Record<string, unknown>
    if (
      !(typeof clientId === 'string' || (typeof clientId === 'number' && !Number.isNaN(clientId)))
    )
      throw invalid(
        `${where} has no clientId (a string or number naming the client that issued it)`,
      )
    if (!('input' in operation)) throw invalid(`${where} (client ${clientId}) has no input`)
    if (typeof call !== 'number' || !Number.isFinite(call))
      throw invalid(
        `${where} (client ${clientId}): call must be a finite number (got ${show(call)})`,
      )
    if (!('return' in operation))
      throw invalid(
        `${where} (client ${clientId}) has no \`return\` field: give the time the client saw the outcome, or undefined (or Infinity) when it never did`,
      )
    const ret = (operation as { return: unknown }).return
    if (ret === undefined || ret === Number.POSITIVE_INFINITY) {
      check(operation as Operation<Input, Output>)
      return { call, return: Number.POSITIVE_INFINITY, known: false }
    }
    if (typeof ret !== 'number' || Number.isNaN(ret) || ret === Number.NEGATIVE_INFINITY)
      throw invalid(
        `${where} (client ${clientId}): return must be a number, or undefined / Infinity for an unknown outcome (got ${show(ret)})`,
      )
    if (ret < call)
      throw invalid(
        `${where} (client ${clientId}) returns (${ret}) before it is called (${call}): the history's clock is broken, or call and return are swapped`,
      )
    check(operation as Operation<Input, Output>)
    return { call, return: ret, known: true }

    function check(op: Operation<Input, Output>): void {
      const problem = validate?.(op)
      if (problem !== undefined) throw invalid(`${where} (client ${clientId}): ${problem}`)
    }
  })
}

function invalid(message: string): LinearizabilityError {
  return new LinearizabilityError('INVALID_HISTORY', message)
}

function typeName(value: unknown): string {
  if (value === null) return 'null'
  if (value === undefined) return 'undefined'
  if (Array.isArray(value)) return 'an array'
  return typeof value === 'object' ? 'an object' : `${typeof value} ${show(value)}`
}

/** A value in a message: JSON where it can be, never a throw. */
export function show(value: unknown): string {
  if (value === undefined) return 'undefined'
  if (typeof value === 'bigint') return `${value}n`
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value)
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return String(value)
  }
}
