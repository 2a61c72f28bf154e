/**
 * Capabilities: typed names for what a protocol offers to the protocols above it. A
 * capability pairs a name with the type of its control object, so `ctx.get(PSYNC)` is a
 * typed reference — no ioctl-style `control(op, buf)`.
 *
 * ```ts
 * export const PSYNC = capability<'psync', PsyncControl>('psync')
 * ```
 */
export interface Capability<Name extends string = string, Control = unknown> {
  readonly name: Name
  /**
   * Phantom: carries the control type; never set at runtime. A method signature (checked
   * bivariantly), so `Capability<'x', XControl>` still fits the plain `Capability` bound.
   */
  __control?(control: Control): Control
}

export function capability<Name extends string, Control>(name: Name): Capability<Name, Control> {
  if (typeof name !== 'string' || name.length === 0) {
    throw new TypeError('a capability needs a non-empty name')
  }
  return Object.freeze({ name })
}

/** Capability name → control type. */
export type CapabilityMap = { readonly [name: string]: unknown }

/** The control type a capability carries. */
export type ControlOf<C> = C extends Capability<string, infer Control> ? Control : never

/** `[Capability<'a', A>, Capability<'b', B>]` → `{ a: A; b: B }`. */
export type CapabilitiesOf<T extends readonly Capability[]> = {
  [C in T[number] as C['name']]: ControlOf<C>
}

/** The empty capability map. */
export type NoCapabilities = Record<never, never>
