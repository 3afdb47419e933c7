import { createBLAKE3 } from "hash-wasm"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as fs from "node:fs"
import { availableParallelism } from "node:os"
import { chunkFor, hashChunk, HashReadError } from "../lib/BlockHashing.js"
import { letEventLoopTurn } from "../lib/EventLoop.js"
import * as HashWorkers from "../lib/HashWorkers.js"
import { Hasher, type HasherApi } from "../services/Hasher.js"

/** Bytes read per step on the calling thread: the event loop gets a turn between two. */
const READ_CHUNK = 4 * 1024 * 1024

/**
 * BLAKE3 through hash-wasm. The WASM instance is created once (that part is async);
 * afterwards init/update/digest are synchronous, so each call below runs start to
 * finish without yielding and the single shared instance is never interleaved.
 */
const makeHasher = Effect.map(Effect.promise(() => createBLAKE3()), (blake3) => {
  const hash = (data: Uint8Array) => blake3.init().update(data).digest("hex")
  /**
   * A file's blocks on this thread: synchronous reads a few MiB at a time (much faster
   * than a thread-pool round trip per block), a turn of the event loop between them.
   */
  const hashFileBlocks = (fd: number, size: number, blockSize: number) =>
    Effect.gen(function*() {
      const chunk = chunkFor(blockSize, READ_CHUNK)
      const buffer = Buffer.allocUnsafe(Math.min(chunk, Math.max(size, 1)))
      const hashes: Array<string> = []
      for (let start = 0; start < size; start += chunk) {
        const want = Math.min(chunk, size - start)
        const read = yield* Effect.try({
          try: () => hashChunk(fs.readSync, hash, fd, buffer, start, want, blockSize, hashes),
          catch: (e) => new HashReadError({ message: e instanceof Error ? e.message : String(e) })
        })
        if (!read) return yield* new HashReadError({ message: "file shrank while reading" })
        if (start + chunk < size) yield* letEventLoopTurn
      }
      return hashes
    })
  return {
    hash,
    hashParts: (parts) => {
      const h = blake3.init()
      for (const part of parts) h.update(part)
      return h.digest("hex")
    },
    hashFileBlocks
  } satisfies HasherApi
})

/** BLAKE3 on the calling thread. */
export const layer: Layer.Layer<Hasher> = Layer.effect(Hasher, makeHasher)

/** Smallest file hashed by the workers: below it a job's round trip costs more than it saves. */
const WORKER_MIN_SIZE = 8 * 1024 * 1024

/**
 * BLAKE3 with files of 8 MiB and more hashed by worker threads, one per core (at most
 * 4): a large file is hashed in parallel slices, and the main thread keeps serving
 * peers meanwhile. A worker that cannot start or dies leaves the file to this thread.
 * A scan's new small files are hashed ahead there too (`hashSmallFiles`).
 */
export const layerWithWorkers = (
  workers = Math.min(4, availableParallelism()),
  options?: Parameters<typeof HashWorkers.make>[1]
): Layer.Layer<Hasher> =>
  Layer.scoped(
    Hasher,
    Effect.gen(function*() {
      const local = yield* makeHasher
      const pool = yield* HashWorkers.make(workers, options)
      // one worker at a time for a scan's small files: the main thread indexes what it
      // hashes meanwhile, and a second worker's isolate would cost more memory than time
      const smallFiles = yield* Effect.makeSemaphore(1)
      return {
        ...local,
        hashFileBlocks: (fd, size, blockSize) =>
          size < WORKER_MIN_SIZE
            ? local.hashFileBlocks(fd, size, blockSize)
            : pool.hashBlocks(fd, size, blockSize).pipe(
              Effect.catchTag("HashPoolError", (e) =>
                Effect.zipRight(Effect.logWarning(`${e.message}: hashing on the main thread`), local.hashFileBlocks(fd, size, blockSize)))
            ),
        hashSmallFiles: (paths, maxSize, blockSize) =>
          smallFiles.withPermits(1)(pool.hashSmallFiles(paths, maxSize, blockSize)).pipe(
            Effect.catchAll((e) => Effect.as(Effect.logDebug(`${e.message}: small files hashed on the main thread`), paths.map(() => undefined)))
          )
      } satisfies HasherApi
    })
  )
