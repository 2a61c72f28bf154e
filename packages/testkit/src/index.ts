/**
 * @packageDocumentation
 * `@consul/testkit` — conformance suites that third parties run against their own
 * implementations of Consul's interfaces, in a few lines of vitest:
 *
 * - `@consul/testkit/storage` — `storageSuite(setup)` for a `StableStorage`
 * - `@consul/testkit/transport` — `transportSuite(setup)` for a `Transport`
 *
 * @example
 * ```ts
 * // test/conformance.test.ts
 * import { storageSuite } from '@consul/testkit/storage'
 * import { memoryStorage } from '@consul/xkernel'
 *
 * storageSuite({ name: 'memory', create: () => memoryStorage(), crash: (s) => { s.crash(); return s } })
 * ```
 *
 * The suites import `describe`, `it` and `expect` from `vitest` (a peer dependency).
 */

export { simTransportHarness } from './sim-harness.js'
export { type StorageSetup, storageSuite } from './storage.js'
export { type TransportHarness, type TransportSetup, transportSuite } from './transport.js'
