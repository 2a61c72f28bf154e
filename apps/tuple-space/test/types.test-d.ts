import { expectTypeOf, it } from 'vitest'
import type { TupleSpace } from '../src/client.js'
import { formal, type Matched } from '../src/tuple.js'

declare const ts: TupleSpace

it('a template types the tuple it matches', () => {
  expectTypeOf<Matched<readonly ['task', typeof formal.int, typeof formal.any]>>().toEqualTypeOf<
    ['task', number, string | number | boolean | Uint8Array | null]
  >()
  expectTypeOf(ts.in(['job', formal.string, formal.bytes])).resolves.toEqualTypeOf<
    ['job', string, Uint8Array]
  >()
  expectTypeOf(ts.inp([formal.boolean, 3])).resolves.toEqualTypeOf<[boolean, 3] | undefined>()
})

it('tuples hold values only', () => {
  // @ts-expect-error an object is no tuple value
  void ts.out([{ a: 1 }])
  // @ts-expect-error a formal belongs in a template
  void ts.out([formal.int])
  // @ts-expect-error undefined is no tuple value
  void ts.out(['x', undefined])
})
