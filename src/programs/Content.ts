import { Effect } from "effect"
import * as fsp from "node:fs/promises"
import { FsError } from "../domain/Errors.js"
import { blockSizeFor } from "../domain/FileRecord.js"
import { Hasher, type HasherApi } from "../services/Hasher.js"

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

/** Hash a file block by block, reading `size` bytes with one reused buffer. */
export const hashFileContent = (abs: string, size: number) =>
  Effect.gen(function*() {
    const hasher = yield* Hasher
    const blockSize = blockSizeFor(size)
    const blocks = yield* Effect.acquireUseRelease(
      Effect.tryPromise({ try: () => fsp.open(abs, "r"), catch: (cause) => new FsError({ op: "open", path: abs, cause }) }),
      (handle) =>
        Effect.tryPromise({
          try: async () => {
            const buffer = Buffer.allocUnsafe(Math.min(blockSize, Math.max(size, 1)))
            const hashes: Array<string> = []
            for (let offset = 0; offset < size; offset += blockSize) {
              const want = Math.min(blockSize, size - offset)
              const { bytesRead } = await handle.read(buffer, 0, want, offset)
              if (bytesRead !== want) throw new Error("file shrank while reading")
              hashes.push(hasher.hash(buffer.subarray(0, want)))
            }
            return hashes
          },
          catch: (cause) => new FsError({ op: "read", path: abs, cause })
        }),
      (handle) => Effect.promise(() => handle.close())
    )
    return { hash: fileHash(hasher, blocks, size), blockSize, blocks } satisfies Content
  })
