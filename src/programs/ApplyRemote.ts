import { Data, Duration, Effect, Either, Option } from "effect"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { FsError, type UnsafePath } from "../domain/Errors.js"
import { fsSync } from "../lib/FsTry.js"
import { blockLength, type FileRecord } from "../domain/FileRecord.js"
import { conflictPath, decide } from "../domain/Reconcile.js"
import { merge } from "../domain/VersionVector.js"
import { validatePeerPath } from "../lib/SafePath.js"
import type { RootedFs } from "../lib/RootedFs.js"
import { printable, showPath } from "../lib/Printable.js"
import { decompressBlock } from "../lib/Lz4Block.js"
import { type BlockLocation, FileIndex, type LocalRecord } from "../services/FileIndex.js"
import { Events, NodeEvent } from "../services/Events.js"
import { Folder } from "../services/Folder.js"
import { Hasher, type HasherApi } from "../services/Hasher.js"
import { diskState, scanLocked, scanPath, statMatches } from "./Scanner.js"
import { moveToTrash, numbered, preserveInTrash } from "./Trash.js"

/** A block could not be had from the peer (gone, changed while sent, timed out, bad data). */
export class BlockUnavailable extends Data.TaggedError("BlockUnavailable")<{ readonly reason: string }> {}

/**
 * Takes each block of a stream as it arrives (synchronously, on the hot path). Returns
 * undefined when the block was taken, or why it was refused, which stops the stream.
 */
export type BlockSink = (index: number, data: Uint8Array, compressed: boolean) => string | undefined

/** Where remote blocks come from: the peer session. */
export interface BlockSource {
  /** The peer serving them. */
  readonly peerId: string
  /** Stream the blocks `blocks` (indexes) of version `hash` of `path` into `sink`; done when all arrived. */
  readonly fetchBlocks: (
    request: { readonly path: string; readonly hash: string; readonly blocks: ReadonlyArray<number> },
    sink: BlockSink
  ) => Effect.Effect<void, BlockUnavailable>
}


/** A block from a local file, re-verified (the file may have changed since its scan). */
const readLocalBlock = (disk: RootedFs, location: BlockLocation | undefined, hasher: HasherApi, hash: string, size: number) => {
  if (!location || location.size !== size) return undefined
  try {
    const data = disk.readBlock(location.path, location.offset, size)
    return data.length === size && hasher.hash(data) === hash ? data : undefined
  } catch {
    return undefined
  }
}

/** Local block copies made between two turns of the event loop: sessions and keepalives keep running. */
const COPY_BYTES_PER_TURN = 16 * 1024 * 1024

/** Free space a download must leave on the disk: 1% of it, at least 64 MiB. */
const reserveFor = (total: number) => Math.max(total / 100, 64 * 1024 * 1024)

/** Refuse a download that would fill the disk (a peer may announce a file of any size up to the cap). */
const ensureSpace = (disk: RootedFs, size: number) =>
  fsSync("statfs", ".", () => fs.statfsSync(disk.root)).pipe(
    Effect.flatMap((st) => {
      const free = st.bavail * st.bsize
      return size + reserveFor(st.blocks * st.bsize) <= free
        ? Effect.void
        : Effect.fail(new BlockUnavailable({ reason: `not enough free space (${size} bytes needed, ${free} free)` }))
    }),
    Effect.catchTag("FsError", () => Effect.void) // no statfs here: go on, a full disk fails the write
  )

const partName = (relPath: string, tag: string) => {
  const dir = path.posix.dirname(relPath)
  const name = `.dsync-${tag}-${randomBytes(4).toString("hex")}.part`
  return dir === "." ? name : `${dir}/${name}`
}

/** Create a part file next to `relPath`; it is removed again if the scope closes with a failure. */
const createPart = (disk: RootedFs, relPath: string, tag: string, create: (part: string) => void) =>
  Effect.gen(function*() {
    const part = partName(relPath, tag)
    yield* Effect.acquireRelease(
      fsSync("create", part, () => create(part)),
      (_, exit) => exit._tag === "Failure" ? Effect.sync(() => {
        try {
          disk.unlink(part)
        } catch { /* already renamed into place, or never made */ }
      }) : Effect.void
    )
    return part
  })

/**
 * Download `remote` into a `.part` file next to its target: blocks found locally are
 * copied, the rest fetched from the peer; every block is hash-checked, the file fsynced,
 * its mode and mtime set through the descriptor. The part file is removed if anything
 * fails or the fiber is interrupted.
 */
const downloadToPart = (remote: FileRecord, source: BlockSource) =>
  Effect.gen(function*() {
    const hasher = yield* Hasher
    const index = yield* FileIndex
    const disk = (yield* Folder).fs
    yield* ensureSpace(disk, remote.size)
    let fd = -1
    const part = yield* createPart(disk, remote.path, remote.hash.slice(0, 8), (p) => void (fd = disk.createExclusive(p, 0o600)))
    yield* Effect.addFinalizer(() => Effect.sync(() => fs.closeSync(fd)))
    const writeAt = (index: number, data: Uint8Array) => fs.writeSync(fd, data, 0, data.length, index * remote.blockSize)
    // blocks we already have (old version, a copy, a renamed file, the trash) are not fetched;
    // the copies are bounded by the file's size and yield to the event loop as they go
    const local = yield* index.findBlocks(remote.blocks)
    const missing: Array<number> = []
    let sinceYield = 0
    for (let i = 0; i < remote.blocks.length; i++) {
      const size = blockLength(remote, i)
      const data = readLocalBlock(disk, local.get(remote.blocks[i]!), hasher, remote.blocks[i]!, size)
      if (!data) {
        missing.push(i)
        continue
      }
      yield* fsSync("write", part, () => writeAt(i, data))
      sinceYield += size
      if (sinceYield >= COPY_BYTES_PER_TURN) {
        sinceYield = 0
        yield* Effect.yieldNow()
      }
    }
    const fetchBytes = missing.reduce((sum, i) => sum + blockLength(remote, i), 0)
    let received = 0
    const events = yield* Events
    const report = { path: remote.path, peerId: source.peerId }
    yield* events.publish(NodeEvent.TransferStarted({ ...report, bytes: remote.size, fetchBytes }))
    if (missing.length > 0) {
      // progress from a ticker, not from the per-block hot path
      yield* Effect.forkScoped(
        Effect.suspend(() => events.publish(NodeEvent.TransferProgress({ ...report, received, fetchBytes }))).pipe(
          Effect.delay(PROGRESS_INTERVAL),
          Effect.forever
        )
      )
      // Synchronous writes: measured faster here than a thread-pool round trip per block.
      yield* source.fetchBlocks({ path: remote.path, hash: remote.hash, blocks: missing }, (index, data0, compressed) => {
        const size = blockLength(remote, index)
        const data = compressed ? decompressBlock(data0, size) : data0
        if (!data || data.length !== size || hasher.hash(data) !== remote.blocks[index]) {
          return `block ${index} failed its hash check (changed while sent?)`
        }
        try {
          writeAt(index, data)
          received += size
          return undefined
        } catch (cause) {
          return `cannot write ${part}: ${cause instanceof Error ? cause.message : String(cause)}`
        }
      })
    }
    yield* fsSync("sync", part, () => {
      fs.fsyncSync(fd)
      fs.futimesSync(fd, new Date(), remote.mtimeMs / 1000)
      fs.fchmodSync(fd, remote.mode & 0o777) // never setuid, setgid or sticky from a peer
    })
    return { part, fetched: missing.length, fetchedBytes: fetchBytes }
  })

/** How often a download in progress reports its bytes. */
const PROGRESS_INTERVAL = Duration.millis(250)

/** Create a symlink at a temporary name, to be renamed over the target (never followed). */
const symlinkToPart = (remote: FileRecord) =>
  Effect.flatMap(Folder, (folder) =>
    createPart(folder.fs, remote.path, "0", (p) => folder.fs.symlink(remote.target ?? "", p)))

const storeApplied = (remote: FileRecord, local: LocalRecord | undefined) =>
  Effect.gen(function*() {
    const index = yield* FileIndex
    const st = yield* diskState(remote.path)
    if (!st) return yield* new FsError({ op: "stat", path: remote.path, cause: "vanished right after being written" })
    // The stat key is ours (so our watcher sees no change); content and version are the peer's.
    yield* index.put({ ...remote, mode: remote.mode & 0o777, version: merge(local?.version ?? {}, remote.version), mtimeMs: st.mtimeMs, inode: st.ino })
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
    return { local, decision: decide(local, remote), present: st }
  })

/** Keep what is at `relPath` before a peer's version replaces it: a file's blocks stay usable from the trash. */
const keepReplaced = (relPath: string, present: fs.Stats) =>
  Effect.gen(function*() {
    const index = yield* FileIndex
    const kept = yield* preserveInTrash(relPath)
    if (present.isFile()) yield* index.relocateBlocks(relPath, kept)
  })

/**
 * Swap a finished part file (or symlink) into place, keeping whatever it replaces: as a
 * conflict copy under a name no file has, or in the trash. Returns the conflict copy's path.
 */
const commitPart = (remote: FileRecord, part: string) =>
  Effect.gen(function*() {
    const folder = yield* Folder
    const index = yield* FileIndex
    const { local, decision, present } = yield* freshDecision(remote)
    if (decision === "ignore" || decision === "keep") {
      yield* fsSync("unlink", part, () => folder.fs.unlink(part))
      return undefined
    }
    let conflictCopy: string | undefined
    if (decision === "conflict" && present && !present.isDirectory()) {
      const name = conflictPath(remote.path, new Date(), index.replicaId)
      conflictCopy = yield* fsSync("keep conflict copy", remote.path, () => folder.fs.linkUnique(remote.path, (n) => numbered(name, n)))
      yield* Effect.flatMap(Events, (events) => events.publish(NodeEvent.ConflictKept({ path: remote.path, keptAs: conflictCopy! })))
      yield* Effect.logWarning(`conflict: ${showPath(remote.path)} changed here and on a peer; kept ours as ${showPath(conflictCopy)}`)
    } else if (present && !present.isDirectory()) {
      yield* keepReplaced(remote.path, present)
    } else if (present?.isDirectory()) {
      yield* fsSync("rmdir", remote.path, () => folder.fs.rmdir(remote.path)) // only if empty: never drop a tree
    }
    yield* fsSync("rename", part, () => folder.fs.rename(part, remote.path))
    yield* storeApplied(remote, local)
    return conflictCopy
  })

/** Apply a peer's deletion: the file goes to the trash, an empty directory is removed. */
const applyDelete = (remote: FileRecord, peerId: string) =>
  Effect.gen(function*() {
    const folder = yield* Folder
    const index = yield* FileIndex
    const { local, decision, present } = yield* freshDecision(remote)
    if (decision === "ignore" || decision === "keep") return
    if (present?.isDirectory()) {
      const removed = yield* fsSync("rmdir", remote.path, () => folder.fs.rmdir(remote.path)).pipe(Effect.as(true), Effect.orElseSucceed(() => false))
      if (!removed) return yield* Effect.logInfo(`kept folder ${showPath(remote.path)}: a peer deleted it but it still holds files`)
    } else if (present) {
      // its blocks stay usable from the trash: the other half of a rename may come later
      const kept = yield* moveToTrash(remote.path)
      if (present.isFile()) yield* index.relocateBlocks(remote.path, kept)
    }
    yield* index.put({ ...remote, version: merge(local?.version ?? {}, remote.version), inode: 0 })
    yield* Effect.logInfo(`deleted: ${showPath(remote.path)}`)
    yield* Effect.flatMap(Events, (events) => events.publish(NodeEvent.FileDeleted({ path: remote.path, peerId })))
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
      const removed = yield* fsSync("rmdir", parent, () => folder.fs.rmdir(parent)).pipe(
        Effect.as(true),
        Effect.orElseSucceed(() => false)
      )
      if (!removed) return
    }
  })

const applyDir = (remote: FileRecord) =>
  Effect.gen(function*() {
    const folder = yield* Folder
    const { local, decision, present } = yield* freshDecision(remote)
    if (decision === "ignore" || decision === "keep") return
    if (present && !present.isDirectory()) yield* moveToTrash(remote.path)
    yield* fsSync("mkdir", remote.path, () => {
      folder.fs.mkdirs(remote.path)
      folder.fs.chmodDir(remote.path, (remote.mode & 0o777) | 0o700)
    })
    yield* storeApplied(remote, local)
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
 * outside the lock, then decide again and commit under the path's lock. Every
 * filesystem call goes through the folder's rooted calls, so none can leave it.
 * False when it failed in a way worth retrying (a block was unavailable, a disk error).
 */
export const applyRemote = (remote: FileRecord, source: BlockSource): Effect.Effect<boolean, never, FileIndex | Folder | Hasher | Events> =>
  Effect.gen(function*() {
    const started = Date.now()
    const folder = yield* Folder
    const index = yield* FileIndex
    const valid = validatePeerPath(remote.path)
    if (Either.isLeft(valid)) return yield* Effect.logWarning(`refused path from peer: ${showPath(remote.path)}: ${valid.left.reason}`)
    if (yield* folder.isIgnored(remote.path, remote.kind === "dir")) return
    const initial = decide(Option.getOrUndefined(yield* index.get(remote.path)), remote)
    if (initial === "ignore" || initial === "keep") return
    const locked = folder.withPathLock(remote.path)
    if (initial === "record") return yield* locked(recordOnly(remote))
    if (remote.deleted) return yield* locked(applyDelete(remote, source.peerId))
    if (remote.kind === "dir") return yield* locked(applyDir(remote))
    const { part, fetched, fetchedBytes } = remote.kind === "file"
      ? yield* downloadToPart(remote, source)
      : { part: yield* symlinkToPart(remote), fetched: 0, fetchedBytes: 0 }
    const conflictCopy = yield* locked(commitPart(remote, part))
    if (conflictCopy) yield* scanPath(conflictCopy)
    yield* Effect.logInfo(
      `received: ${showPath(remote.path)}` +
        (remote.kind === "file" ? ` (${remote.size} bytes, ${fetched} of ${remote.blocks.length} blocks from peer)` : ` (${remote.kind})`)
    )
    yield* Effect.flatMap(Events, (events) =>
      events.publish(NodeEvent.FileReceived({
        path: remote.path,
        peerId: source.peerId,
        kind: remote.kind,
        bytes: remote.size,
        fetchedBytes,
        durationMs: Date.now() - started
      })))
  }).pipe(
    Effect.scoped,
    Effect.as(true),
    Effect.catchAll((e: FsError | UnsafePath | BlockUnavailable) => {
      const reason = "reason" in e ? e.reason : e.message
      return Effect.logWarning(`could not apply ${showPath(remote.path)} from peer: ${printable(reason)}`).pipe(
        Effect.zipRight(Effect.flatMap(Events, (events) =>
          events.publish(NodeEvent.TransferFailed({ path: remote.path, peerId: source.peerId, reason })))),
        Effect.as(e._tag !== "FsError" && e._tag !== "BlockUnavailable") // worth another try later
      )
    })
  )
