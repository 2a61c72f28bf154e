import { afterEach, describe, expect, it, vi } from 'vitest'
import { createLogger, jsonLineSink, type LogThreshold, memorySink } from '../src/index.js'

afterEach(() => {
  vi.restoreAllMocks()
})

describe('createLogger', () => {
  it('defaults to level warn', () => {
    const sink = memorySink()
    const log = createLogger({ sink })
    log.debug('d')
    log.info('i')
    log.warn('w')
    log.error('e')
    expect(sink.records.map((r) => r.level)).toEqual(['warn', 'error'])
    expect(log.enabled('info')).toBe(false)
    expect(log.enabled('warn')).toBe(true)
  })

  it('filters by threshold, and "silent" writes nothing', () => {
    const levels: LogThreshold[] = ['debug', 'info', 'warn', 'error', 'silent']
    const written = levels.map((level) => {
      const sink = memorySink()
      const log = createLogger({ level, sink })
      log.debug('d')
      log.info('i')
      log.warn('w')
      log.error('e')
      return sink.records.length
    })
    expect(written).toEqual([4, 3, 2, 1, 0])
  })

  it('stamps records with the clock time, message and fields', () => {
    const sink = memorySink()
    let now = 5
    const log = createLogger({ level: 'debug', sink, now: () => now })
    log.info('suspected', { node: 'b', reason: 'silent for 300 ms' })
    now = 7.5
    log.debug('no fields')
    expect(sink.records).toEqual([
      {
        time: 5,
        level: 'info',
        msg: 'suspected',
        fields: { node: 'b', reason: 'silent for 300 ms' },
      },
      { time: 7.5, level: 'debug', msg: 'no fields' },
    ])
    expect('fields' in sink.records[1]!).toBe(false)
  })

  it('time is 0 without a clock', () => {
    const sink = memorySink()
    createLogger({ sink }).error('x')
    expect(sink.records[0]!.time).toBe(0)
  })

  it('child() adds bindings, and nested children merge and override them', () => {
    const sink = memorySink()
    const root = createLogger({ level: 'info', sink })
    const host = root.child({ host: 'a' })
    const session = host.child({ protocol: 'psync', group: 'g1' })
    session.info('hello')
    session.child({ group: 'g2' }).warn('moved')
    host.info('host only')
    expect(sink.records).toEqual([
      { time: 0, level: 'info', msg: 'hello', host: 'a', protocol: 'psync', group: 'g1' },
      { time: 0, level: 'warn', msg: 'moved', host: 'a', protocol: 'psync', group: 'g2' },
      { time: 0, level: 'info', msg: 'host only', host: 'a' },
    ])
    expect(session.enabled('debug')).toBe(false)
  })

  it('rejects an unknown level with RangeError', () => {
    for (const level of ['verbose', 'constructor', 'toString', '']) {
      expect(() => createLogger({ level: level as LogThreshold })).toThrow(RangeError)
    }
  })
})

describe('jsonLineSink', () => {
  it('writes one JSON line per record to stderr', () => {
    const write = vi.spyOn(process.stderr, 'write').mockImplementation(() => true)
    createLogger({ sink: jsonLineSink }).warn('disk slow', { ms: 12 })
    expect(write).toHaveBeenCalledOnce()
    const line = String(write.mock.calls[0]![0])
    expect(line.endsWith('\n')).toBe(true)
    expect(JSON.parse(line)).toEqual({
      time: 0,
      level: 'warn',
      msg: 'disk slow',
      fields: { ms: 12 },
    })
  })

  it('is the default sink', () => {
    const write = vi.spyOn(process.stderr, 'write').mockImplementation(() => true)
    createLogger().error('boom')
    expect(write).toHaveBeenCalledOnce()
  })
})
