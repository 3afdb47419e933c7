import * as Effect from "effect/Effect"
import { letEventLoopTurn } from "../lib/EventLoop.js"
import * as fs from "node:fs"
import { FsError } from "../domain/Errors.js"
import { blockSizeFor } from "../domain/FileRecord.js"
import type { RootedFs } from "../lib/RootedFs.js"
import { Hasher, type HasherApi } from "../services/Hasher.js"

/** What hashing a file gives: its hash, its block size and the hex hash of each block. */
export interface Content {
  readonly hash: string
  readonly blockSize: number
  readonly blocks: ReadonlyArray<string>
}

const hexToBytes = (hex: string): Uint8Array => Buffer.from(hex, "hex")

/**
 * The file hash: BLAKE3 over the block hashes and the size. A receiver that has
 * verified every block against the list has verified the whole file.
 */
export const fileHash = (hasher: HasherApi, blocks: ReadonlyArray<string>, size: number): string => {
  const sizeBytes = new Uint8Array(8)
  new DataView(sizeBytes.buffer).setBigUint64(0, BigInt(size), true)
  return hasher.hashParts([...blocks.map(hexToBytes), sizeBytes])
}

/** Bytes read per step while hashing: large reads are cheap, and the event loop gets a turn between them. */
const READ_CHUNK = 4 * 1024 * 1024

/**
 * Hash the file `rel` block by block (opened without following a link), with its stat
 * through the same descriptor once read (a change while hashing shows there). Reads are
 * synchronous, a few MiB at a time with a yield between them: much faster than a
 * thread-pool round trip per block, and other fibers (sessions, keepalives) still run
 * while a large file is hashed.
 */
export const hashFileContent = (disk: RootedFs, rel: string, size: number) =>
  Effect.gen(function*() {
    const hasher = yield* Hasher
    const blockSize = blockSizeFor(size)
    const fail = (op: string) => (cause: unknown) => new FsError({ op, path: rel, cause })
    const { hashes: blocks, after } = yield* Effect.acquireUseRelease(
      Effect.try({ try: () => disk.openRead(rel), catch: fail("open") }),
      (fd) =>
        Effect.gen(function*() {
          const chunk = Math.max(blockSize, READ_CHUNK - (READ_CHUNK % blockSize))
          const buffer = Buffer.allocUnsafe(Math.min(chunk, Math.max(size, 1)))
          const hashes: Array<string> = []
          for (let start = 0; start < size; start += chunk) {
            const want = Math.min(chunk, size - start)
            const got = yield* Effect.try({ try: () => fs.readSync(fd, buffer, 0, want, start), catch: fail("read") })
            if (got !== want) return yield* Effect.fail(fail("read")(new Error("file shrank while reading")))
            for (let offset = 0; offset < want; offset += blockSize) {
              hashes.push(hasher.hash(buffer.subarray(offset, Math.min(offset + blockSize, want))))
            }
            if (start + chunk < size) yield* letEventLoopTurn // a large file lets the rest run between chunks
          }
          // what the file is now, through the descriptor read (no second path walk)
          const after = yield* Effect.try({ try: () => fs.fstatSync(fd), catch: fail("stat") })
          return { hashes, after }
        }),
      (fd) => Effect.sync(() => fs.closeSync(fd))
    )
    return { content: { hash: fileHash(hasher, blocks, size), blockSize, blocks } satisfies Content, after }
  })
