import { Data, Effect, Either, Option } from "effect"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as fsp from "node:fs/promises"
import * as path from "node:path"
import { FsError, type UnsafePath } from "../domain/Errors.js"
import { fsTry } from "../lib/FsTry.js"
import { blockLength, type FileRecord } from "../domain/FileRecord.js"
import { conflictPath, decide } from "../domain/Reconcile.js"
import { merge } from "../domain/VersionVector.js"
import { resolveInside, validatePeerPath } from "../lib/SafePath.js"
import { readBlockSync } from "../lib/BlockIO.js"
import { decompressBlock } from "../lib/Lz4Block.js"
import { type BlockLocation, FileIndex, type LocalRecord } from "../services/FileIndex.js"
import { Folder } from "../services/Folder.js"
import { Hasher, type HasherApi } from "../services/Hasher.js"
import { fileHash } from "./Content.js"
import { diskState, lstatOrUndefined, scanLocked, scanPath, statMatches } from "./Scanner.js"
import { moveToTrash, preserveInTrash } from "./Trash.js"

/** A block could not be had from the peer (gone, changed while sent, timed out, bad data). */
export class BlockUnavailable extends Data.TaggedError("BlockUnavailable")<{ readonly reason: string }> {}

/**
 * Takes each block of a stream as it arrives (synchronously, on the hot path). Returns
 * undefined when the block was taken, or why it was refused, which stops the stream.
 */
export type BlockSink = (index: number, data: Uint8Array, compressed: boolean) => string | undefined

/** Where remote blocks come from: the peer session. */
export interface BlockSource {
  /** Stream the blocks `blocks` (indexes) of version `hash` of `path` into `sink`; done when all arrived. */
  readonly fetchBlocks: (
    request: { readonly path: string; readonly hash: string; readonly blocks: ReadonlyArray<number> },
    sink: BlockSink
  ) => Effect.Effect<void, BlockUnavailable>
}


/** A block from a local file, re-verified (the file may have changed since its scan). */
const readLocalBlock = (root: string, location: BlockLocation | undefined, hasher: HasherApi, hash: string, size: number) => {
  if (!location || location.size !== size) return undefined
  try {
    const data = readBlockSync(path.join(root, location.path), location.offset, size)
    return data.length === size && hasher.hash(data) === hash ? data : undefined
  } catch {
    return undefined
  }
}

/**
 * Download `remote` into a `.part` file next to its target: blocks found locally are
 * copied, the rest fetched from the peer; every block is hash-checked, the file fsynced.
 * The part file is removed if anything fails or the fiber is interrupted.
 */
const downloadToPart = (remote: FileRecord, target: string, source: BlockSource) =>
  Effect.gen(function*() {
    const hasher = yield* Hasher
    const index = yield* FileIndex
    const folder = yield* Folder
    if (fileHash(hasher, remote.blocks, remote.size) !== remote.hash || remote.blocks.length !== Math.ceil(remote.size / remote.blockSize)) {
      return yield* new BlockUnavailable({ reason: "record's block list does not match its hash" })
    }
    yield* fsTry("mkdir", path.dirname(target), () => fsp.mkdir(path.dirname(target), { recursive: true }))
    const part = path.join(path.dirname(target), `.dsync-${remote.hash.slice(0, 8)}-${randomBytes(4).toString("hex")}.part`)
    const handle = yield* Effect.acquireRelease(
      fsTry("create", part, () => fsp.open(part, "wx", 0o600)),
      (h, exit) => Effect.promise(() => h.close().catch(() => {})).pipe(
        Effect.zipRight(exit._tag === "Failure" ? Effect.promise(() => fsp.unlink(part).catch(() => {})) : Effect.void)
      )
    )
    // blocks we already have (old version, a copy, a renamed file, the trash) are not fetched
    const local = yield* index.findBlocks(remote.blocks)
    const writeAt = (index: number, data: Uint8Array) =>
      fs.writeSync(handle.fd, data, 0, data.length, index * remote.blockSize)
    const missing: Array<number> = []
    yield* Effect.forEach(remote.blocks, (hash, index) =>
      Effect.try({
        try: () => {
          const data = readLocalBlock(folder.root, local.get(hash), hasher, hash, blockLength(remote, index))
          if (data) writeAt(index, data)
          else missing.push(index)
        },
        catch: (cause) => new FsError({ op: "write", path: part, cause })
      }), { discard: true })
    if (missing.length > 0) {
      // Synchronous writes: measured faster here than a thread-pool round trip per block.
      yield* source.fetchBlocks({ path: remote.path, hash: remote.hash, blocks: missing }, (index, received, compressed) => {
        const size = blockLength(remote, index)
        const data = compressed ? decompressBlock(received, size) : received
        if (!data || data.length !== size || hasher.hash(data) !== remote.blocks[index]) {
          return `block ${index} failed its hash check (changed while sent?)`
        }
        try {
          writeAt(index, data)
          return undefined
        } catch (cause) {
          return `cannot write ${part}: ${cause instanceof Error ? cause.message : String(cause)}`
        }
      })
    }
    const fetched = missing.length
    yield* fsTry("sync", part, () => handle.sync())
    return { part, fetched }
  })

/** Create a symlink at a temporary name, to be renamed over the target. */
const symlinkToPart = (remote: FileRecord, target: string) =>
  Effect.gen(function*() {
    const part = path.join(path.dirname(target), `.dsync-0-${randomBytes(4).toString("hex")}.part`)
    yield* fsTry("mkdir", path.dirname(target), () => fsp.mkdir(path.dirname(target), { recursive: true }))
    yield* Effect.acquireRelease(
      fsTry("symlink", part, () => fsp.symlink(remote.target ?? "", part)),
      (_, exit) => exit._tag === "Failure" ? Effect.promise(() => fsp.unlink(part).catch(() => {})) : Effect.void
    )
    return part
  })

const storeApplied = (remote: FileRecord, local: LocalRecord | undefined, abs: string) =>
  Effect.gen(function*() {
    const index = yield* FileIndex
    const st = yield* lstatOrUndefined(abs)
    if (!st) return yield* new FsError({ op: "stat", path: abs, cause: "vanished right after being written" })
    // The stat key is ours (so our watcher sees no change); content and version are the peer's.
    yield* index.put({ ...remote, version: merge(local?.version ?? {}, remote.version), mtimeMs: st.mtimeMs, inode: st.ino })
  })

/**
 * With the path locked: make sure the index reflects the disk (an edit not yet scanned
 * becomes a version of its own), then decide again against the peer's record.
 */
const freshDecision = (remote: FileRecord) =>
  Effect.gen(function*() {
    const index = yield* FileIndex
    let local = Option.getOrUndefined(yield* index.get(remote.path))
    const st = yield* diskState(remote.path)
    if (local ? !statMatches(local, st) : st !== undefined) {
      yield* scanLocked(remote.path)
      local = Option.getOrUndefined(yield* index.get(remote.path))
    }
    return { local, decision: decide(local, remote) }
  })

/** Swap a finished part file (or symlink) into place, keeping whatever it replaces. */
const commitPart = (remote: FileRecord, target: string, part: string) =>
  Effect.gen(function*() {
    const folder = yield* Folder
    const index = yield* FileIndex
    const { local, decision } = yield* freshDecision(remote)
    if (decision === "ignore" || decision === "keep") {
      yield* fsTry("unlink", part, () => fsp.unlink(part))
      return undefined
    }
    let conflictCopy: string | undefined
    const present = yield* diskState(remote.path)
    if (decision === "conflict" && present) {
      conflictCopy = conflictPath(remote.path, new Date(), index.replicaId)
      yield* fsTry("rename", target, () => fsp.rename(target, path.join(folder.root, conflictCopy!)))
      yield* Effect.logWarning(`conflict: ${remote.path} changed here and on a peer; kept ours as ${conflictCopy}`)
    } else if (present?.isFile()) {
      yield* index.relocateBlocks(remote.path, yield* preserveInTrash(folder.root, remote.path))
    } else if (present?.isDirectory()) {
      yield* fsTry("rmdir", target, () => fsp.rmdir(target)) // only if empty: never drop a tree
    }
    if (remote.kind === "file") {
      yield* fsTry("chmod", part, () => fsp.chmod(part, remote.mode))
      yield* fsTry("utimes", part, () => fsp.utimes(part, new Date(), remote.mtimeMs / 1000))
    }
    yield* fsTry("rename", part, () => fsp.rename(part, target))
    yield* storeApplied(remote, local, target)
    return conflictCopy
  })

/** Apply a peer's deletion: the file goes to the trash, an empty directory is removed. */
const applyDelete = (remote: FileRecord, target: string) =>
  Effect.gen(function*() {
    const folder = yield* Folder
    const index = yield* FileIndex
    const { local, decision } = yield* freshDecision(remote)
    if (decision === "ignore" || decision === "keep") return
    const present = yield* diskState(remote.path)
    if (present?.isDirectory()) {
      const removed = yield* fsTry("rmdir", target, () => fsp.rmdir(target)).pipe(Effect.as(true), Effect.orElseSucceed(() => false))
      if (!removed) return yield* Effect.logInfo(`kept folder ${remote.path}: a peer deleted it but it still holds files`)
    } else if (present) {
      // its blocks stay usable from the trash: the other half of a rename may come later
      yield* index.relocateBlocks(remote.path, yield* moveToTrash(folder.root, remote.path))
    }
    yield* index.put({ ...remote, version: merge(local?.version ?? {}, remote.version), inode: 0 })
    yield* Effect.logInfo(`deleted: ${remote.path}`)
    yield* removeDeletedParents(remote.path)
  })

/** Folders a peer deleted but that still held this entry: remove them now if empty. */
const removeDeletedParents = (relPath: string) =>
  Effect.gen(function*() {
    const folder = yield* Folder
    const index = yield* FileIndex
    for (let parent = path.posix.dirname(relPath); parent !== "."; parent = path.posix.dirname(parent)) {
      const record = Option.getOrUndefined(yield* index.get(parent))
      if (!record?.deleted || record.kind !== "dir") return
      const removed = yield* fsTry("rmdir", parent, () => fsp.rmdir(path.join(folder.root, parent))).pipe(
        Effect.as(true),
        Effect.orElseSucceed(() => false)
      )
      if (!removed) return
    }
  })

const applyDir = (remote: FileRecord, target: string) =>
  Effect.gen(function*() {
    const { local, decision } = yield* freshDecision(remote)
    if (decision === "ignore" || decision === "keep") return
    const present = yield* diskState(remote.path)
    if (present && !present.isDirectory()) {
      yield* moveToTrash((yield* Folder).root, remote.path)
    }
    yield* fsTry("mkdir", target, () => fsp.mkdir(target, { recursive: true }))
    yield* fsTry("chmod", target, () => fsp.chmod(target, remote.mode | 0o700))
    yield* storeApplied(remote, local, target)
  })

/** Store the peer's version for content we already have; nothing on disk changes. */
const recordOnly = (remote: FileRecord) =>
  Effect.gen(function*() {
    const index = yield* FileIndex
    const { local, decision } = yield* freshDecision(remote)
    if (decision !== "record") return
    yield* index.put({ ...(local ?? { ...remote, inode: 0 }), version: merge(local?.version ?? {}, remote.version) })
  })

/**
 * Bring one record a peer announced into this folder, if it should win: download
 * outside the lock, then decide again and commit under the path's lock.
 * False when it failed in a way worth retrying (a block was unavailable, a disk error).
 */
export const applyRemote = (remote: FileRecord, source: BlockSource): Effect.Effect<boolean, never, FileIndex | Folder | Hasher> =>
  Effect.gen(function*() {
    const folder = yield* Folder
    const index = yield* FileIndex
    const valid = validatePeerPath(remote.path)
    if (Either.isLeft(valid)) return yield* Effect.logWarning(`refused path from peer: ${JSON.stringify(remote.path)}: ${valid.left.reason}`)
    if (yield* folder.isIgnored(remote.path, remote.kind === "dir")) return
    const initial = decide(Option.getOrUndefined(yield* index.get(remote.path)), remote)
    if (initial === "ignore" || initial === "keep") return
    const target = yield* resolveInside(folder.root, remote.path)
    const locked = folder.withPathLock(remote.path)
    if (initial === "record") return yield* locked(recordOnly(remote))
    if (remote.deleted) return yield* locked(applyDelete(remote, target))
    if (remote.kind === "dir") return yield* locked(applyDir(remote, target))
    const { part, fetched } = remote.kind === "file"
      ? yield* downloadToPart(remote, target, source)
      : { part: yield* symlinkToPart(remote, target), fetched: 0 }
    const conflictCopy = yield* locked(commitPart(remote, target, part))
    if (conflictCopy) yield* scanPath(conflictCopy)
    yield* Effect.logInfo(
      `received: ${remote.path}` +
        (remote.kind === "file" ? ` (${remote.size} bytes, ${fetched} of ${remote.blocks.length} blocks from peer)` : ` (${remote.kind})`)
    )
  }).pipe(
    Effect.scoped,
    Effect.as(true),
    Effect.catchAll((e: FsError | UnsafePath | BlockUnavailable) =>
      Effect.logWarning(`could not apply ${remote.path} from peer: ${"reason" in e ? e.reason : e.message}`).pipe(
        Effect.as(e._tag !== "FsError" && e._tag !== "BlockUnavailable") // worth another try later
      )
    )
  )
