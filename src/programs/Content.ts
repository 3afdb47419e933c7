import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import { FsError } from "../domain/Errors.js"
import { blockSizeFor } from "../domain/FileRecord.js"
import type { RootedFs } from "../lib/RootedFs.js"
import { hashChunk, HashReadError } from "../lib/BlockHashing.js"
import type { SmallFileHash } from "../lib/HashWorkers.js"
import { childOf } from "../lib/SafePath.js"
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

/**
 * Files up to this size are read whole and hashed in one synchronous step: most files of
 * a folder, none large enough for a hash worker. The general path's acquire/use/release
 * and its read loop were a third of the fiber steps of a first scan of small files.
 */
const SMALL_FILE = 1024 * 1024

/** `hashFileContent`'s work for a small file, opened, read, hashed, stat'ed and closed at once. */
const hashSmallFile = (disk: RootedFs, hasher: HasherApi, rel: string, size: number, blockSize: number) =>
  Effect.suspend(() => {
    let fd: number
    try {
      fd = disk.openRead(rel)
    } catch (cause) {
      return Effect.fail(new FsError({ op: "open", path: rel, cause }))
    }
    let op = "read"
    try {
      const blocks: Array<string> = []
      if (!hashChunk(fs.readSync, hasher.hash, fd, Buffer.allocUnsafe(size), 0, size, blockSize, blocks)) {
        return Effect.fail(new FsError({ op, path: rel, cause: new HashReadError({ message: "file shrank while reading" }) }))
      }
      op = "stat"
      // what the file is now, through the descriptor read (no second path walk)
      return Effect.succeed({ blocks, after: fs.fstatSync(fd) })
    } catch (cause) {
      return Effect.fail(new FsError({ op, path: rel, cause }))
    } finally {
      fs.closeSync(fd)
    }
  })

/**
 * Hash the file `rel` block by block (opened without following a link), with its stat
 * through the same descriptor once read (a change while hashing shows there).
 */
export const hashFileContent = (disk: RootedFs, rel: string, size: number) =>
  Effect.gen(function*() {
    const hasher = yield* Hasher
    const blockSize = blockSizeFor(size)
    const fail = (op: string) => (cause: unknown) => new FsError({ op, path: rel, cause })
    const { blocks, after } = size <= SMALL_FILE ? yield* hashSmallFile(disk, hasher, rel, size, blockSize) : yield* Effect.acquireUseRelease(
      Effect.try({ try: () => disk.openRead(rel), catch: fail("open") }),
      (fd) =>
        Effect.gen(function*() {
          const blocks = yield* Effect.mapError(hasher.hashFileBlocks(fd, size, blockSize), fail("read"))
          // what the file is now, through the descriptor read (no second path walk)
          const after = yield* Effect.try({ try: () => fs.fstatSync(fd), catch: fail("stat") })
          return { blocks, after }
        }),
      (fd) => Effect.sync(() => fs.closeSync(fd))
    )
    return { content: { hash: fileHash(hasher, blocks, size), blockSize, blocks } satisfies Content, after }
  })

/**
 * The files `names` of folder `relDir` (new to the index: their reads would wait on the
 * disk one by one on the main thread) read and hashed on the hash workers, where there
 * are some, in one job (the caller passes a batch of a few hundred), the folder held open
 * meanwhile; keyed by folder-relative path. Small regular files only: anything else, or a
 * failure, is left out, to be hashed as usual.
 */
export const hashAhead = (disk: RootedFs, relDir: string, names: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const hashed = new Map<string, SmallFileHash>()
    const hashSmallFiles = (yield* Hasher).hashSmallFiles
    if (hashSmallFiles === undefined || names.length === 0) return hashed
    const folder = yield* Effect.acquireRelease(
      Effect.sync(() => {
        try {
          return disk.holdFolder(relDir)
        } catch {
          return undefined // gone or replaced: each file is looked at on its own
        }
      }),
      (held) => Effect.sync(() => held?.close())
    )
    if (folder === undefined) return hashed
    const results = yield* hashSmallFiles(names.map(folder.at), SMALL_FILE, blockSizeFor(SMALL_FILE))
    results.forEach((result, i) => result && hashed.set(childOf(relDir, names[i]!), result))
    return hashed
  }).pipe(Effect.scoped)

/**
 * `relPath`'s content and its stat once read, from `hashAhead`'s result when that was
 * taken of the file `st` still shows (same inode, size and mtime); else undefined.
 */
export const contentHashedAhead = (
  hasher: HasherApi,
  hashed: SmallFileHash | undefined,
  st: { readonly ino: number; readonly size: number; readonly mtimeMs: number }
): { readonly content: Content; readonly after: SmallFileHash["after"] } | undefined => {
  if (hashed === undefined || hashed.ino !== st.ino || hashed.size !== st.size || hashed.mtimeMs !== st.mtimeMs) return undefined
  const content = { hash: fileHash(hasher, hashed.blocks, hashed.size), blockSize: blockSizeFor(hashed.size), blocks: hashed.blocks }
  return { content, after: hashed.after }
}
