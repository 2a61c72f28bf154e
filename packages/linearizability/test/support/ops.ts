import type { KvCommand, KvInput, KvOperation, KvOutput } from '../../src/index.js'

/** `done(client, input, call, return, output)`: an operation whose outcome the client saw. */
export function done(
  clientId: number,
  input: KvInput,
  call: number,
  ret: number,
  output: KvOutput,
): KvOperation {
  return { clientId, input, call, return: ret, output }
}

/** An operation whose outcome is unknown (a timeout, a dropped connection). */
export function lost(clientId: number, input: KvInput, call: number): KvOperation {
  return { clientId, input, call, return: undefined }
}

export const get = (key: string): KvCommand => ({ op: 'get', key })
export const set = (key: string, value: string): KvCommand => ({ op: 'set', key, value })
export const del = (...keys: string[]): KvCommand =>
  keys.length === 1 ? { op: 'del', key: keys[0]! } : { op: 'del', keys }
export const incr = (key: string, by = 1): KvCommand => ({ op: 'incr', key, by })
export const append = (key: string, value: string): KvCommand => ({ op: 'append', key, value })
export const mget = (...keys: string[]): KvCommand => ({ op: 'mget', keys })
export const mset = (entries: Record<string, string>): KvCommand => ({
  op: 'mset',
  entries: Object.entries(entries),
})
export const rename = (key: string, to: string): KvCommand => ({ op: 'rename', key, to })
export const hset = (key: string, field: string, value: string): KvCommand => ({
  op: 'hset',
  key,
  fields: [[field, value]],
})
export const hget = (key: string, field: string): KvCommand => ({ op: 'hget', key, field })
export const multi = (...commands: KvCommand[]): KvInput => ({ op: 'multi', commands })
export const error = (message: string): KvOutput => ({ error: message })
