export interface StackOptions {
  /** `'total'`, or `'semantic'` (commands on different keys commute: `directoryKeys`). */
  readonly order: 'total' | 'semantic'
  /** Failure Detection's timeout (ms). */
  readonly suspectAfterMs: number
  /** Waves between two coordinated checkpoints (strong stack). */
  readonly checkpointEveryWaves: number
  /** A CRC-32 for Recovery's records (on Node: `zlib.crc32`, ≈ 5× the built-in one). */
  readonly crc32: (bytes: Uint8Array) => number
}
