/**
 * Typed composition: `stack().use(a).use(b)…start(services)`. Each `use` checks, in the
 * type system, that everything the factory requires was provided by an earlier one; a
 * missing capability is a compile error whose text names it. `start` runs the same check
 * for JavaScript callers and throws `XKernelError('MISSING_CAPABILITY')`.
 */
import type { CapabilityMap, NoCapabilities } from './capability.js'
import { XKernelError } from './errors.js'
import { type Host, type HostServices, startHost } from './host.js'
import type { AnyProtocolFactory, ProtocolFactory } from './protocol.js'

type MissingCapabilities<Req, Prov> = Exclude<keyof Req, keyof Prov>
type MismatchedCapabilities<Req, Prov> = {
  [K in keyof Req & keyof Prov]: Prov[K] extends Req[K] ? never : K
}[keyof Req & keyof Prov]
type DuplicateCapabilities<P, Prov> = Extract<keyof P, keyof Prov>

/**
 * `unknown` when `factory` fits after the protocols that provide `Prov`; otherwise an
 * object type whose property name is the error message and whose value names the
 * capabilities at fault — so the compiler's error reads like one.
 */
export type CompositionCheck<Req, P, Prov> = [MissingCapabilities<Req, Prov>] extends [never]
  ? [MismatchedCapabilities<Req, Prov>] extends [never]
    ? [DuplicateCapabilities<P, Prov>] extends [never]
      ? unknown
      : {
          readonly 'error: capability already provided by an earlier protocol': DuplicateCapabilities<
            P,
            Prov
          >
        }
    : {
        readonly 'error: capability provided with an incompatible control type': MismatchedCapabilities<
          Req,
          Prov
        >
      }
  : {
      readonly 'error: missing capability, add a protocol that provides it earlier in the stack': MissingCapabilities<
        Req,
        Prov
      >
    }

export class Stack<Prov extends CapabilityMap = NoCapabilities> {
  /** @internal use `stack()` */
  constructor(readonly factories: readonly AnyProtocolFactory[] = []) {}

  /** A new stack with `factory` on top. The stack itself is immutable. */
  use<Req extends CapabilityMap, P extends CapabilityMap>(
    factory: ProtocolFactory<Req, P> & CompositionCheck<Req, P, Prov>,
  ): Stack<Prov & P> {
    return new Stack<Prov & P>([...this.factories, factory as AnyProtocolFactory])
  }

  /** Throws `XKernelError` when the stack is not well formed (the runtime twin of `use`). */
  validate(): void {
    validateFactories(this.factories)
  }

  /** Builds a host: one protocol object per factory, with the given services. */
  async start(services: HostServices): Promise<Host<Prov>> {
    this.validate()
    return startHost<Prov>(this.factories, services)
  }
}

/** An empty stack. */
export function stack(): Stack<NoCapabilities> {
  return new Stack()
}

/** Protocol names become storage prefixes and `host.stats()` keys. */
const PROTOCOL_NAME = /^[a-z][a-z0-9-]{0,63}$/
/** Names the framework itself uses in `host.stats()` and in storage. */
const RESERVED = new Set(['xkernel', 'transport'])

export function validateFactories(factories: readonly AnyProtocolFactory[]): void {
  const provided = new Map<string, string>()
  const names = new Set<string>()
  for (const factory of factories) {
    if (
      factory === null ||
      typeof factory !== 'object' ||
      typeof factory.create !== 'function' ||
      !Array.isArray(factory.requires) ||
      !Array.isArray(factory.provides)
    ) {
      throw new XKernelError(
        'INVALID_ARGUMENT',
        'stack().use() takes a protocol factory (made with defineProtocol), got ' +
          (factory === null ? 'null' : typeof factory),
      )
    }
    if (
      typeof factory.name !== 'string' ||
      !PROTOCOL_NAME.test(factory.name) ||
      RESERVED.has(factory.name)
    ) {
      throw new XKernelError(
        'INVALID_ARGUMENT',
        `protocol name ${JSON.stringify(factory.name)} must be lower-case letters, digits and '-' (at most 64, starting with a letter) and not one of ${[...RESERVED].join(', ')}`,
      )
    }
    if (names.has(factory.name)) {
      throw new XKernelError(
        'INVALID_ARGUMENT',
        `protocol ${factory.name} is in the stack twice; each protocol appears once`,
      )
    }
    names.add(factory.name)
    for (const cap of factory.requires) {
      if (!provided.has(cap.name)) {
        throw new XKernelError(
          'MISSING_CAPABILITY',
          `protocol ${factory.name} requires capability '${cap.name}', which no earlier protocol ` +
            `provides: add a protocol that provides '${cap.name}' before ${factory.name}`,
        )
      }
    }
    for (const cap of factory.provides) {
      const earlier = provided.get(cap.name)
      if (earlier !== undefined) {
        throw new XKernelError(
          'DUPLICATE_CAPABILITY',
          `protocols ${earlier} and ${factory.name} both provide capability '${cap.name}': keep one`,
        )
      }
      provided.set(cap.name, factory.name)
    }
  }
}
