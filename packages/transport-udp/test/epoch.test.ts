/** Where epochs come from: the wall clock with a monotonic guard, or a durable file. */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { fileEpoch, wallClockEpoch } from '../src/adapters/epoch-source.js'
import { UdpTransportError } from '../src/errors.js'
import { udp } from '../src/index.js'

const dir = () => mkdtempSync(join(tmpdir(), 'consul-epoch-'))

describe('epochs', () => {
  it('from the wall clock: about Date.now(), and strictly growing within a process', () => {
    const before = Date.now()
    const epochs = Array.from({ length: 1000 }, () => wallClockEpoch())
    expect(epochs[0]).toBeGreaterThanOrEqual(before)
    for (let i = 1; i < epochs.length; i++) expect(epochs[i]).toBeGreaterThan(epochs[i - 1]!)
  })

  it('from a file: created, then above both the stored value and the clock', () => {
    const path = join(dir(), 'epoch')
    const first = fileEpoch(path)
    expect(Number(readFileSync(path, 'utf8'))).toBe(first)
    expect(fileEpoch(path)).toBeGreaterThan(first)
    // A clock that stepped back: the stored epoch (far in the future here) still wins.
    writeFileSync(path, `${2 ** 47}\n`)
    expect(fileEpoch(path)).toBe(2 ** 47 + 1)
    expect(fileEpoch(path)).toBe(2 ** 47 + 2)
  })

  it('a damaged or unwritable epoch file is an EPOCH_FILE error that says what to do', () => {
    const path = join(dir(), 'epoch')
    writeFileSync(path, 'not a number')
    expect(() => fileEpoch(path)).toThrow(UdpTransportError)
    expect(() => fileEpoch(path)).toThrow(/not an epoch.*delete it/)
    expect(() => fileEpoch(join(dir(), 'missing-dir', 'epoch'))).toThrow(/cannot be written/)
  })

  it('udp() takes the epoch from the options, or from epochFile', async () => {
    const peers = { b: { host: '127.0.0.1', port: 9 } }
    const t = await udp({ self: 'a', peers, host: '127.0.0.1', port: 0, epoch: 12345 })
    expect(t.epoch).toBe(12345)
    await t.close()
    const path = join(dir(), 'epoch')
    writeFileSync(path, '777\n')
    const f = await udp({ self: 'a', peers, host: '127.0.0.1', port: 0, epochFile: path })
    expect(f.epoch).toBeGreaterThan(777) // the clock is far above 778
    expect(Number(readFileSync(path, 'utf8'))).toBe(f.epoch)
    await f.close()
    const w = await udp({ self: 'a', peers, host: '127.0.0.1', port: 0 })
    expect(w.epoch).toBeGreaterThan(f.epoch - 1)
    await w.close()
  })
})
