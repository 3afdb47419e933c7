import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type { HashReadError } from "../lib/BlockHashing.js"
import type { SmallFileHash } from "../lib/HashWorkers.js"

/** BLAKE3: synchronous for blocks on the hot path; files' blocks possibly off the main thread. */
export interface HasherApi {
  /** Hex digest (32 bytes) of `data`. */
  readonly hash: (data: Uint8Array) => string
  /** Hash several parts as one message, without concatenating them. */
  readonly hashParts: (parts: ReadonlyArray<Uint8Array>) => string
  /**
   * Hex hashes of the `blockSize` blocks of the first `size` bytes of the open file
   * `fd` (fails if it is shorter). `fd` must stay open until this ends: an
   * interruption returns only once nothing reads it any more.
   */
  readonly hashFileBlocks: (fd: number, size: number, blockSize: number) => Effect.Effect<ReadonlyArray<string>, HashReadError>
  /**
   * Where files are hashed off the main thread: the files at `paths` (paths another thread
   * can open, see `RootedFs.holdFolder`) read and hashed whole when each is a regular file
   * of at most `maxSize` bytes, else undefined (also for all when the workers fail).
   */
  readonly hashSmallFiles?: (
    paths: ReadonlyArray<string>,
    maxSize: number,
    blockSize: number
  ) => Effect.Effect<ReadonlyArray<SmallFileHash | undefined>>
}

/**
 * The hasher for blocks, files and link targets. The layers are in `HasherBlake3`:
 * `layer` hashes on the calling thread, `layerWithWorkers` hashes large files on a
 * pool of worker threads (the node's).
 */
export class Hasher extends Context.Tag("dsync/Hasher")<Hasher, HasherApi>() {}
