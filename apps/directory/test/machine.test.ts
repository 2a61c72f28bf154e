import { decode, encode } from 'msgpackr'
import { describe, expect, it } from 'vitest'
import { commands, Directory, directoryClasses, directoryMachine } from '../src/index.js'

const words = (...w: string[]) => w.map((x) => new TextEncoder().encode(x))

describe('the directory machine', () => {
  it('snapshot and restore give back every key, type, value and expiry', () => {
    const d = new Directory()
    commands.run(d, {
      c: [words('SET', 'a', '1', 'PX', '50'), words('HSET', 'h', 'f', 'v')],
      t: 1000,
    })
    // Through msgpack, as a checkpoint travels.
    const back = directoryMachine.restore(decode(encode(directoryMachine.snapshot(d))))
    expect(back.clock).toBe(1000)
    expect([...back.keys]).toEqual([...d.keys])
  })

  it('ranks read-only commands 0 and everything else 1 for semantic order', () => {
    const cmd = (tag: string, args: unknown) => encode([1, tag, args, 0])
    expect(directoryClasses(cmd('run', { c: [words('GET', 'k')], t: 1 }))).toBe(0)
    expect(
      directoryClasses(cmd('run', { c: [words('GET', 'k'), words('SET', 'k', 'v')], t: 1 })),
    ).toBe(1)
    expect(directoryClasses(cmd('run', { c: 'junk', t: 1 }))).toBe(1)
    expect(directoryClasses(Uint8Array.of(1, 2, 3))).toBe(1)
  })
})
