import { describe, expect, it } from 'vitest'
import { ConfigError, keyFromFile, keyringFromFile, parseServeArgs } from '../src/config.js'

const env = { CONSUL_GROUP_KEY: 'ab'.repeat(16) }
const base = [
  '--self',
  'a',
  '--peers',
  'a=127.0.0.1:7001,b=127.0.0.1:7002',
  '--port',
  '6380',
  '--data',
  '/tmp/d',
]

describe('consul-directory serve arguments', () => {
  it('has the documented defaults', () => {
    expect(parseServeArgs(base, env)).toMatchObject({
      self: 'a',
      peers: { a: { host: '127.0.0.1', port: 7001 }, b: { host: '127.0.0.1', port: 7002 } },
      listen: { host: '127.0.0.1', port: 6380 },
      group: 'directory',
      stack: 'strong',
      order: 'total',
      linearizableReads: false,
      encrypt: false,
      init: undefined,
      suspectAfterMs: 1000,
      checkpointEveryWaves: 1024,
      writeTimeoutMs: 10_000,
      maxClients: 10_000,
      logLevel: 'warn',
    })
  })

  it('takes every option, in both spellings', () => {
    const c = parseServeArgs(
      [
        ...base,
        '--stack=weak',
        '--order',
        'semantic',
        '--linearizable-reads',
        '--join',
        '--password',
        'pw',
        '--write-timeout-ms',
        '0',
      ],
      env,
    )
    expect(c).toMatchObject({
      stack: 'weak',
      order: 'semantic',
      linearizableReads: true,
      init: 'join',
      password: 'pw',
      writeTimeoutMs: 0,
    })
    expect(parseServeArgs([...base, '--bootstrap'], env).init).toBe('bootstrap')
    expect(parseServeArgs(base, { ...env, CONSUL_DIRECTORY_PASSWORD: 'x' }).password).toBe('x')
  })

  it.each([
    [['--bootstrap', '--join'], /exclude each other/],
    [['--stack', 'medium'], /--stack is strong or weak, not medium/],
    [['--order', 'causal'], /--order is total or semantic/],
    [['--suspect-after-ms', '-1'], /positive integer/],
    [['--nope', '1'], /unknown option --nope/],
    [['--linearizable-reads=yes'], /takes no value/],
    [['--password', ''], /must not be empty/],
    [['stray'], /unexpected argument/],
  ])('refuses %j with a clear message', (extra, message) => {
    expect(() => parseServeArgs([...base, ...extra], env)).toThrow(message)
    expect(() => parseServeArgs([...base, ...extra], env)).toThrow(ConfigError)
  })

  it('needs the required options, a peer entry for itself, and a key', () => {
    expect(() => parseServeArgs(base.slice(2), env)).toThrow(/--self is required/)
    expect(() => parseServeArgs(['--self', 'z', ...base.slice(2)], env)).toThrow(
      /must include --self/,
    )
    expect(() => parseServeArgs(base, {})).toThrow(/a group key is required/)
    expect(() => parseServeArgs(base, { CONSUL_GROUP_KEY: 'abcd' })).toThrow(/at least 16 bytes/)
    expect(() => keyFromFile(Buffer.from('short'))).toThrow(/at least 16 bytes/)
    expect(keyFromFile(Buffer.from(`${'01'.repeat(16)}\n`))).toEqual(
      Buffer.from('01'.repeat(16), 'hex'),
    )
  })

  it('--encrypt switches the group to AEAD; it takes no value', () => {
    expect(parseServeArgs([...base, '--encrypt'], env).encrypt).toBe(true)
    expect(() => parseServeArgs([...base, '--encrypt=yes'], env)).toThrow(/takes no value/)
  })
})

describe('key files', () => {
  const a = '0a'.repeat(32)
  const b = '0b'.repeat(16)
  it('a single key (hex or raw) is the keyring of id 0', () => {
    expect(keyringFromFile(Buffer.from(`${a}\n`))).toEqual([
      { id: 0, key: new Uint8Array(Buffer.from(a, 'hex')) },
    ])
    const raw = Buffer.alloc(20, 7)
    expect(keyringFromFile(raw)).toEqual([{ id: 0, key: new Uint8Array(raw) }])
  })

  it('<id>:<hex> lines are a keyring (comments and blank lines skipped)', () => {
    const ring = keyringFromFile(Buffer.from(`# rotation to 1\n0:${a}\n\n 1:${b} \r\n`))
    expect(ring.map((k) => k.id)).toEqual([0, 1])
    expect(Buffer.from(ring[1]!.key).toString('hex')).toBe(b)
  })

  it('a bad keyring names its line', () => {
    const bad = (text: string) => () => keyringFromFile(Buffer.from(text))
    expect(bad(`0:${a}\nnope`)).toThrow(/line 2: not <id>:<hex key>/)
    expect(bad(`256:${a}`)).toThrow(/line 1: key id 256 is over 255/)
    expect(bad(`3:${'ab'.repeat(15)}`)).toThrow(/line 1: the key must be at least 16 bytes/)
    expect(bad(`1:${a}\n1:${b}`)).toThrow(/line 2: key id 1 appears twice/)
    expect(bad(`0:${a}\nx:${b}`)).toThrow(ConfigError)
  })
})
