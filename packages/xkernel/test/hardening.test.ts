import { describe, expect, it } from 'vitest'
import {
  capability,
  defineProtocol,
  type MemoryStorage,
  MessageBuffer,
  memoryStorage,
  StorageError,
  stack,
  XKernelError,
} from '../src/index.js'
import { LoopbackNetwork, ManualClock } from './fakes.js'

interface NoteControl {
  write(value: number): void
  sync(): Promise<void>
}
const NOTE = capability<'note', NoteControl>('note')

const note = defineProtocol({
  name: 'note',
  provides: [NOTE],
  create: () => ({
    open: (ctx) => {
      if (ctx.group.restoring && ctx.group.port === 'broken')
        throw new Error('cannot restore broken')
      return {
        controls: {
          note: {
            write: (value) => ctx.storage.put('v', new Uint8Array([value])),
            sync: () => ctx.storage.sync(),
          },
        },
      }
    },
  }),
})

async function boot(storage: MemoryStorage, network = new LoopbackNetwork('sync', ['a'])) {
  return stack()
    .use(note)
    .start({ transport: network.transport('a'), storage, clock: new ManualClock() })
}

describe('a crashed host cannot write', () => {
  it('drops writes through controls held after the crash and never settles their syncs', async () => {
    const storage = memoryStorage()
    const host = await boot(storage)
    const group = await host.open({ port: 'g', members: ['a'] })
    const control = group.get(NOTE)
    control.write(1)
    await control.sync()
    host.crash()
    control.write(2)
    let settled = false
    void control.sync().then(() => {
      settled = true
    })
    await new Promise((resolve) => setImmediate(resolve))
    expect(settled).toBe(false)
    expect(storage.get('note/g/v')).toEqual(new Uint8Array([1]))
    expect(host.stats().xkernel!.writesAfterClose).toBe(1)
  })
})

describe('recoverGroups', () => {
  it('recovers every group it can and reports the ones it cannot', async () => {
    const storage = memoryStorage()
    const first = await boot(storage)
    await first.open({ port: 'broken', members: ['a'] })
    await first.open({ port: 'fine', members: ['a'] })
    await storage.sync()
    first.crash()
    const second = await boot(storage)
    const error = await second.recoverGroups().catch((e: unknown) => e)
    expect(error).toBeInstanceOf(XKernelError)
    expect((error as XKernelError).code).toBe('RECOVERY_FAILED')
    expect((error as XKernelError).message).toContain('broken: cannot restore broken')
    expect(second.groups().map((g) => g.port)).toEqual(['fine'])
    expect(second.group('fine')!.restoring).toBe(true)
  })
})

describe('names', () => {
  it('refuses protocol names that would collide with framework keys or storage prefixes', async () => {
    const named = (name: string) =>
      defineProtocol({ name, create: () => ({ open: () => ({ controls: {} }) }) })
    const network = new LoopbackNetwork('sync', ['a'])
    for (const bad of ['xkernel', 'transport', 'Upper', 'with/slash', '9lives', 'a'.repeat(65)]) {
      await expect(
        stack()
          .use(named(bad))
          .start({ transport: network.transport('a'), clock: new ManualClock() }),
      ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
    }
    await expect(
      stack()
        .use(named('psync-2'))
        .start({ transport: network.transport('a'), clock: new ManualClock() }),
    ).resolves.toBeDefined()
  })

  it('refuses storage keys with a lone surrogate', () => {
    const s = memoryStorage()
    expect(() => s.put('bad\uD800', new Uint8Array(1))).toThrow(StorageError)
    s.put('good\u{1F600}', new Uint8Array(1))
    expect(s.size).toBe(1)
  })
})

describe('MessageBuffer growth', () => {
  it('grows headroom geometrically: pushing n headers costs O(log n) regrows', () => {
    const before = MessageBuffer.regrows
    const msg = MessageBuffer.empty(8)
    for (let i = 0; i < 10_000; i++) msg.pushU32(i)
    expect(msg.length).toBe(40_000)
    expect(MessageBuffer.regrows - before).toBeLessThan(20)
    expect(msg.popU32()).toBe(9_999)
  })
})

describe('open hooks', () => {
  it('beforeStart runs after every session exists and before any starts', async () => {
    const order: string[] = []
    const probe = defineProtocol({
      name: 'probe',
      provides: [NOTE],
      create: () => ({
        open: () => {
          order.push('open')
          return {
            controls: { note: { write: () => {}, sync: async () => {} } },
            start: () => void order.push('start'),
          }
        },
      }),
    })
    const storage = memoryStorage()
    const network = new LoopbackNetwork('sync', ['a'])
    const host = await stack()
      .use(probe)
      .start({ transport: network.transport('a'), storage, clock: new ManualClock() })
    await host.open(
      { port: 'g', members: ['a'] },
      {
        beforeStart: (group) => {
          order.push('hook')
          expect(typeof group.get(NOTE).write).toBe('function')
        },
      },
    )
    expect(order).toEqual(['open', 'hook', 'start'])
    await storage.sync()
    host.crash()
    const again = await stack()
      .use(probe)
      .start({ transport: network.transport('a'), storage, clock: new ManualClock() })
    await again.recoverGroups(undefined, { beforeStart: () => void order.push('recover-hook') })
    expect(order).toEqual(['open', 'hook', 'start', 'open', 'recover-hook', 'start'])
  })
})
