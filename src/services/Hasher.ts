import * as Context from "effect/Context"

/** BLAKE3, synchronous for the hot path. */
export interface HasherApi {
  /** Hex digest (32 bytes) of `data`. */
  readonly hash: (data: Uint8Array) => string
  /** Hash several parts as one message, without concatenating them. */
  readonly hashParts: (parts: ReadonlyArray<Uint8Array>) => string
}

/** The hasher for blocks, files and link targets. The default layer is `HasherBlake3`. */
export class Hasher extends Context.Tag("dsync/Hasher")<Hasher, HasherApi>() {}
