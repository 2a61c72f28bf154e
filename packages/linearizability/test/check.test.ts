import { describe, expect, it } from 'vitest'
import { check, LinearizabilityError, type Model, type Operation } from '../src/index.js'

/** A single integer register: `write v` → 'ok', `read` → the value (0 at first). */
type RegisterInput = { readonly write: number } | { readonly read: true }
const register: Model<number, RegisterInput, number | 'ok'> = {
  init: () => 0,
  step: (state, input, output) =>
    'write' in input
      ? output === 'ok'
        ? { ok: true, state: input.write }
        : { ok: false, reason: `write returned ${output}` }
      : output === state
        ? { ok: true, state }
        : { ok: false, reason: `read ${output}, the register holds ${state}` },
  stepUnknown: (state, input) => ('write' in input ? input.write : state),
  describeOperation: (input, output, known) =>
    `${'write' in input ? `write ${input.write}` : 'read'} → ${known ? String(output) : '?'}`,
}
type RegisterOp = Operation<RegisterInput, number | 'ok'>
const write = (
  clientId: number,
  value: number,
  call: number,
  ret: number | undefined,
): RegisterOp =>
  ret === undefined
    ? { clientId, input: { write: value }, call, return: undefined }
    : { clientId, input: { write: value }, call, return: ret, output: 'ok' }
const read = (clientId: number, value: number, call: number, ret: number): RegisterOp => ({
  clientId,
  input: { read: true },
  call,
  return: ret,
  output: value,
})

describe('check', () => {
  it('accepts an empty history and a sequential one', () => {
    expect(check(register, []).result).toBe('ok')
    const history = [read(1, 0, 0, 1), write(1, 5, 2, 3), read(2, 5, 4, 5), write(2, 6, 6, 7)]
    const result = check(register, history)
    expect(result.result).toBe('ok')
    expect(result.partitions[0]!.linearization).toEqual(history)
  })

  it('accepts overlapping operations in whichever order fits, and rejects a read that goes back', () => {
    const overlapping = [
      write(1, 1, 0, 10),
      write(2, 2, 1, 11),
      read(3, 2, 2, 3), // write 2 took effect first…
      read(3, 1, 12, 13), // …then write 1
    ]
    const result = check(register, overlapping)
    expect(result.result).toBe('ok')
    expect(result.partitions[0]!.linearization!.map((op) => op.input)).toEqual([
      { write: 2 },
      { read: true },
      { write: 1 },
      { read: true },
    ])
    expect(check(register, [...overlapping, read(4, 2, 14, 15)]).result).toBe('illegal')
  })

  it('treats operations that share an instant as concurrent', () => {
    // The write returns at 5 and the read is called at 5: either may come first.
    expect(check(register, [write(1, 1, 0, 5), read(2, 0, 5, 6)]).result).toBe('ok')
    expect(check(register, [write(1, 1, 0, 5), read(2, 0, 6, 7)]).result).toBe('illegal')
  })

  it('lets an unknown outcome take effect any time after its call — or never', () => {
    // Took effect, long after the client gave up.
    expect(
      check(register, [write(1, 7, 0, undefined), read(2, 0, 1, 2), read(2, 7, 100, 101)]).result,
    ).toBe('ok')
    // Never took effect.
    expect(check(register, [write(1, 7, 0, undefined), read(2, 0, 100, 101)]).result).toBe('ok')
    // But not before its call.
    expect(check(register, [read(2, 7, 0, 1), write(1, 7, 2, undefined)]).result).toBe('illegal')
    // And once seen, it stays.
    expect(
      check(register, [write(1, 7, 0, undefined), read(2, 7, 1, 2), read(2, 0, 3, 4)]).result,
    ).toBe('illegal')
  })

  it('rejects with a counterexample: the longest prefix, the blocked operation and why', () => {
    const history = [write(1, 1, 0, 1), write(1, 2, 2, 3), read(2, 1, 4, 5)]
    const result = check(register, history)
    expect(result.result).toBe('illegal')
    const counterexample = result.counterexample!
    expect(counterexample.prefix).toEqual([history[0], history[1]])
    expect(counterexample.blocked).toBe(history[2])
    expect(counterexample.state).toBe('2')
    expect(counterexample.reason).toBe('read 1, the register holds 2')
    expect(counterexample.text).toContain('[t 4–5] client 2: read → 1')
    expect(counterexample.text).toContain('State after it: 2')
    expect(result.partitions[0]!.counterexample).toBe(counterexample)
  })

  it('lists the other operations pending at that point, and why each fails', () => {
    // Both reads are pending when the first returns; neither fits.
    const history = [write(1, 1, 0, 1), read(2, 5, 2, 4), read(3, 7, 3, 10)]
    const counterexample = check(register, history).counterexample!
    expect(counterexample.blocked).toBe(history[1])
    expect(counterexample.tried).toEqual([
      { operation: history[2], reason: 'read 7, the register holds 1' },
    ])
    expect(counterexample.text).toContain(
      '[t 3–10] client 3: read → 7 — read 7, the register holds 1',
    )
  })

  it('reports the furthest prefix over every order it tried', () => {
    // Only "write 1, then write 2" explains the first read; then the second read cannot fit.
    const history = [write(1, 1, 0, 10), write(2, 2, 0, 10), read(3, 2, 11, 12), read(3, 1, 13, 14)]
    const counterexample = check(register, history).counterexample!
    expect(counterexample.prefix).toEqual([history[0], history[1], history[2]])
    expect(counterexample.blocked).toBe(history[3])
    expect(counterexample.reason).toBe('read 1, the register holds 2')
  })

  it('checks 50,000 operations in one partition without overflowing the stack', () => {
    const history: RegisterOp[] = []
    for (let i = 0; i < 25_000; i++) {
      // Each write overlaps the next one, and each read overlaps both.
      history.push(write(i % 4, i + 1, 4 * i, 4 * i + 5), read(4, i + 1, 4 * i + 5, 4 * i + 6))
    }
    expect(check(register, history).result).toBe('ok')
    const broken = [...history, read(5, 3, 200_000, 200_001)]
    const result = check(register, broken)
    expect(result.result).toBe('illegal')
    expect(result.counterexample!.prefix).toHaveLength(50_000)
    expect(result.counterexample!.text).toContain('its last 20')
  })

  it("returns 'unknown' when the time runs out, instead of searching on", () => {
    // Twenty concurrent writes and a read of a value none wrote: every subset gets explored.
    const hard: RegisterOp[] = Array.from({ length: 20 }, (_, i) => write(i, i + 1, 0, 100))
    hard.push(read(99, 1000, 0, 100))
    let ticks = 0
    const now = () => (ticks++ === 0 ? 0 : 1_000)
    const result = check(register, hard, { timeoutMs: 10, now })
    expect(result.result).toBe('unknown')
    expect(result.partitions[0]!.result).toBe('unknown')
    expect(result.counterexample).toBeUndefined()
    // A small one is decided within the same budget.
    expect(check(register, hard.slice(-4), { timeoutMs: 10, now: () => 0 }).result).toBe('illegal')
  })

  it('reports parts not reached before the deadline as unknown, and illegal wins over unknown', () => {
    const parted: Model<number, RegisterInput, number | 'ok'> = {
      ...register,
      partition: (history) => history.map((op) => [op]),
    }
    let ticks = 0
    const now = () => (ticks++ < 2 ? 0 : 1_000) // the start, and the first part's look
    const result = check(parted, [read(1, 5, 0, 1), read(1, 0, 2, 3), read(1, 0, 4, 5)], {
      timeoutMs: 10,
      now,
    })
    expect(result.partitions.map((part) => part.result)).toEqual(['illegal', 'unknown', 'unknown'])
    expect(result.result).toBe('illegal')
  })

  it('checks each part of a partitioned model on its own', () => {
    const perClient: Model<number, RegisterInput, number | 'ok'> = {
      ...register,
      partition: (history) => [
        history.filter((op) => op.clientId === 1),
        history.filter((op) => op.clientId !== 1),
      ],
    }
    // As one register this is illegal; as two independent ones it is fine.
    const history = [write(1, 1, 0, 1), read(2, 0, 2, 3)]
    expect(check(register, history).result).toBe('illegal')
    const result = check(perClient, history)
    expect(result.result).toBe('ok')
    expect(result.partitions).toHaveLength(2)
  })

  it('refuses a model it cannot use, with errors that say what to do', () => {
    const { stepUnknown: _, ...noUnknown } = register
    expect(() => check(noUnknown, [write(1, 1, 0, undefined)])).toThrow(/no stepUnknown/)
    const copies: Model<number, RegisterInput, number | 'ok'> = {
      ...register,
      partition: (history) => [history.map((op) => ({ ...op }))],
    }
    expect(() => check(copies, [read(1, 0, 0, 1)])).toThrow(/not in the history/)
    const leaky: Model<number, RegisterInput, number | 'ok'> = { ...register, partition: () => [] }
    expect(() => check(leaky, [read(1, 0, 0, 1)])).toThrow(/left out operation #0/)
    const twice: Model<number, RegisterInput, number | 'ok'> = {
      ...register,
      partition: (history) => [history, history],
    }
    expect(() => check(twice, [read(1, 0, 0, 1)])).toThrow(/in two parts/)
    expect(() => check({} as typeof register, [])).toThrow(/no init\(\)/)
    try {
      check(noUnknown, [write(1, 1, 0, undefined)])
    } catch (error) {
      expect(LinearizabilityError.isInstance(error)).toBe(true)
      expect((error as LinearizabilityError).code).toBe('INVALID_MODEL')
    }
  })

  it('turns a throwing model into MODEL_FAILED naming the operation', () => {
    const throwing: Model<number, RegisterInput, number | 'ok'> = {
      ...register,
      step: () => {
        throw new Error('boom')
      },
    }
    expect(() => check(throwing, [read(1, 0, 0, 1)])).toThrow(
      /the model threw on read → 0 \(client 1\): boom/,
    )
  })

  it('memoises by the model key, so equal states are explored once', () => {
    // States are objects whose `noise` remembers the order of the writes; a key that ignores
    // it merges states the default key (JSON) keeps apart.
    const noisy: Model<{ value: number; noise: number }, RegisterInput, number | 'ok'> = {
      init: () => ({ value: 0, noise: 0 }),
      step: (state, input, output) => {
        const stepped = register.step(state.value, input, output)
        return stepped.ok
          ? {
              ok: true,
              state: { value: stepped.state, noise: (state.noise * 7 + stepped.state + 1) % 1009 },
            }
          : stepped
      },
      stepUnknown: (state, input) => ({
        value: register.stepUnknown!(state.value, input),
        noise: 0,
      }),
      key: (state) => String(state.value),
    }
    const history: RegisterOp[] = Array.from({ length: 10 }, (_, i) => write(i, i % 2, 0, 10))
    history.push(read(99, 7, 0, 10))
    const keyed = check(noisy, history)
    const { key: _, ...unkeyed } = noisy
    const byJson = check(unkeyed, history)
    expect(keyed.result).toBe('illegal')
    expect(byJson.result).toBe('illegal')
    expect(keyed.partitions[0]!.cached).toBeLessThan(byJson.partitions[0]!.cached)
  })
})
