import { describe, expect, it } from 'vitest'
import { ConfigError, keyFromFile, keyringFromFile, parseArgs } from '../src/config.js'

const KEY = { CONSUL_GROUP_KEY: '00'.repeat(16) }
const base = ['--self', 'a', '--peers', 'a=127.0.0.1:7001,b=127.0.0.1:7002', '--data', './d']
const problem = (argv: string[], env: Record<string, string> = KEY) => {
  try {
    parseArgs(argv, env)
    return 'accepted'
  } catch (error) {
    return error instanceof ConfigError ? error.message : `not a ConfigError: ${String(error)}`
  }
}

describe('the command line', () => {
  it('parses a full command line, with defaults', () => {
    expect(parseArgs([...base, '--listen', '7101'], KEY)).toEqual({
      self: 'a',
      peers: { a: { host: '127.0.0.1', port: 7001 }, b: { host: '127.0.0.1', port: 7002 } },
      listen: { host: '127.0.0.1', port: 7101 },
      dataDir: './d',
      keyHex: '00'.repeat(16),
      group: 'tuple-space',
      encrypt: false,
      suspectAfterMs: 1_000,
      checkpointEveryWaves: 64,
      maxConnections: 10_000,
      logLevel: 'warn',
    })
    expect(parseArgs([...base, '--listen=0.0.0.0:0'], KEY).listen).toEqual({
      host: '0.0.0.0',
      port: 0,
    })
  })

  it('refuses ports that are no decimal port number (an empty one is not port 0)', () => {
    for (const listen of ['127.0.0.1:', ':7101', '0x1F', '1e3', ' 7101', '7101.0', '65536', '-1'])
      expect(problem([...base, '--listen', listen]), listen).toMatch(/--listen: .* is not/)
    for (const peer of ['127.0.0.1:', '127.0.0.1:0', 'h:0x1F', 'h:1e3', 'h:70000'])
      expect(
        problem(['--self', 'a', '--peers', `a=${peer}`, '--data', 'd', '--listen', '1']),
        peer,
      ).toMatch(/--peers a: .* is not/)
  })

  it('says what is wrong with every other bad option', () => {
    const listen = ['--listen', '7101']
    expect(problem([...base])).toBe('--listen is required')
    expect(problem([...base, ...listen, '--nope', '1'])).toBe('unknown option --nope')
    expect(problem([...base, ...listen, 'extra'])).toBe('unexpected argument "extra"')
    expect(problem([...base, ...listen, '--group'])).toBe('--group takes a value')
    expect(problem([...base, ...listen], {})).toMatch(/a group key is required/)
    expect(problem([...base, ...listen], { CONSUL_GROUP_KEY: 'abcd' })).toMatch(/at least 16/)
    expect(problem([...base, ...listen, '--suspect-after-ms', '0'])).toMatch(/positive integer/)
    expect(problem([...base, ...listen, '--suspect-after-ms', '1e3'])).toMatch(/positive integer/)
    expect(problem([...base, ...listen, '--log-level', 'loud'])).toMatch(/--log-level/)
    expect(problem(['--self', 'c', ...base.slice(2), ...listen])).toMatch(/must include --self/)
    expect(problem(['--self', 'a', '--peers', 'a=h:1,a=h:2', '--data', 'd', ...listen])).toMatch(
      /names a twice/,
    )
  })

  it('a key file: hex text or raw bytes, at least 16 bytes', () => {
    expect(keyFromFile(Buffer.from(`${'ab'.repeat(16)}\n`))).toEqual(Buffer.alloc(16, 0xab))
    expect(keyFromFile(Buffer.alloc(20, 1))).toEqual(Buffer.alloc(20, 1))
    expect(() => keyFromFile(Buffer.from('abcd'))).toThrow(ConfigError)
  })

  it('--encrypt is a switch', () => {
    expect(parseArgs([...base, '--listen', '7101', '--encrypt'], KEY).encrypt).toBe(true)
    expect(problem([...base, '--listen', '7101', '--encrypt=1'])).toBe('--encrypt takes no value')
  })

  it('a key file may hold a keyring of <id>:<hex> lines; a bad one names its line', () => {
    const ring = keyringFromFile(Buffer.from(`0:${'ab'.repeat(16)}\n1:${'cd'.repeat(32)}\n`))
    expect(ring.map((k) => k.id)).toEqual([0, 1])
    expect(keyringFromFile(Buffer.from('ab'.repeat(16)))).toEqual([
      { id: 0, key: new Uint8Array(16).fill(0xab) },
    ])
    expect(() =>
      keyringFromFile(Buffer.from(`0:${'ab'.repeat(16)}\n0:${'ab'.repeat(16)}`)),
    ).toThrow(/line 2: key id 0 appears twice/)
    expect(() => keyringFromFile(Buffer.from(`0:abcd`))).toThrow(ConfigError)
  })
})
