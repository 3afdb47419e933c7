import * as Data from "effect/Data"

/** Reading a file to hash it failed, or the file shrank meanwhile. */
export class HashReadError extends Data.TaggedError("HashReadError")<{ readonly message: string }> {}

/** Reads `length` bytes at `position` of `fd` into `buffer`; what `fs.readSync` does. */
export type ReadAt = (fd: number, buffer: Uint8Array, offset: number, length: number, position: number) => number

/** Hex digest of one block; what the BLAKE3 hasher's `hash` does. */
export type HashBlock = (data: Uint8Array) => string

/**
 * Read `want` bytes of `fd` at `position` into `buffer` and push the hex hash of each
 * `blockSize` block of them onto `hashes`; false when the file is shorter (it shrank).
 *
 * Self-contained on purpose (no imports, no closure): the hash workers run this same
 * function from its source text (`hashChunk.toString()`), so the main thread and the
 * workers hash a file the same way without a second copy of the loop.
 */
export function hashChunk(
  readAt: ReadAt,
  hashBlock: HashBlock,
  fd: number,
  buffer: Uint8Array,
  position: number,
  want: number,
  blockSize: number,
  hashes: Array<string>
): boolean {
  if (readAt(fd, buffer, 0, want, position) !== want) return false
  for (let offset = 0; offset < want; offset += blockSize) {
    hashes.push(hashBlock(buffer.subarray(offset, Math.min(offset + blockSize, want))))
  }
  return true
}

/** Bytes read per step while hashing: large reads are cheap; a multiple of the block size. */
export const chunkFor = (blockSize: number, chunkBytes: number): number => Math.max(blockSize, chunkBytes - (chunkBytes % blockSize))
