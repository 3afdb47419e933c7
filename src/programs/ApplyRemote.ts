import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as fs from "node:fs"
import * as path from "node:path"
import { FsError, type UnsafePath } from "../domain/Errors.js"
import { fsSync } from "../lib/FsTry.js"
import type { FileRecord } from "../domain/FileRecord.js"
import { appliedVersion, conflictPath, decide } from "../domain/Reconcile.js"
import { merge } from "../domain/VersionVector.js"
import { validatePeerPath } from "../lib/SafePath.js"
import { createPart, placePart, settlePart } from "../lib/PartFile.js"
import type { RootedFs } from "../lib/RootedFs.js"
import { printable, showPath } from "../lib/Printable.js"
import { FileIndex, type LocalRecord, type NewRecord } from "../services/FileIndex.js"
import { type Events, NodeEvent, publish as publishEvent } from "../services/Events.js"
import { Folder } from "../services/Folder.js"
import type { Hasher } from "../services/Hasher.js"
import { type BlockSource, type BlockUnavailable, type Fetched, Transfer } from "../services/Transfer.js"
import { diskState, scanLocked, scanPath, statMatches } from "./Scanner.js"
import { moveToTrash, numbered, preserveInTrash } from "./Trash.js"

/**
 * Create a symlink at a temporary name beside the target, to be renamed over it (never
 * followed): beside it, as no copy could stand in for a link where a mount is between.
 */
const symlinkToPart = (remote: FileRecord) =>
  Effect.flatMap(Folder, (folder) =>
    createPart(folder.fs, remote.path, "0", (p) => folder.fs.symlink(remote.target ?? "", p), "beside"))

/**
 * The session `remote` came in, when known (`from`): the record stored for it is that
 * peer's own, not to be sent back to it, while its version stays the one it sent (SentBy).
 */
const sentByOf = (remote: FileRecord, from: string | undefined) =>
  from === undefined ? {} : { sentBy: { session: from, version: remote.version } }

/** What the index keeps of a peer's version put in place: the stat key is ours (so our watcher sees no change); content and version are the peer's. */
const appliedRecord = (remote: FileRecord, local: LocalRecord | undefined, st: fs.Stats, from: string | undefined, replica: string): NewRecord => ({
  ...remote,
  mode: remote.mode & 0o777,
  version: appliedVersion(local, remote, replica),
  mtimeMs: st.mtimeMs,
  inode: st.ino,
  ...sentByOf(remote, from)
})

/** Index what was just put in place; `known`: its stat, when taken before (through its descriptor). */
const storeApplied = (remote: FileRecord, local: LocalRecord | undefined, known: fs.Stats | undefined, from: string | undefined) =>
  Effect.gen(function*() {
    const index = yield* FileIndex
    const st = known ?? (yield* diskState(remote.path))
    if (!st) return yield* new FsError({ op: "stat", path: remote.path, cause: "vanished right after being written" })
    yield* index.put(appliedRecord(remote, local, st, from, index.replicaId))
  })

/** Does the index hold what the disk shows at the path (an edit not yet scanned does not)? */
const indexedAsOnDisk = (local: LocalRecord | undefined, st: fs.Stats | undefined): boolean =>
  local ? statMatches(local, st) : st === undefined

/**
 * With the path locked: make sure the index reflects the disk (an edit not yet scanned
 * becomes a version of its own), then decide again against the peer's record.
 */
const freshDecision = (remote: FileRecord) =>
  Effect.gen(function*() {
    const index = yield* FileIndex
    let local = Option.getOrUndefined(yield* index.get(remote.path))
    const st = yield* diskState(remote.path)
    if (!indexedAsOnDisk(local, st)) {
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
 * conflict copy under a name no file has, or in the trash. `partStat`, when known, is what
 * the index keeps as its stat (the part keeps it when renamed). Returns the conflict copy's path.
 */
const commitPart = (remote: FileRecord, part: string, partStat: fs.Stats | undefined, from: string | undefined) =>
  Effect.gen(function*() {
    const folder = yield* Folder
    const index = yield* FileIndex
    const { local, decision, present } = yield* freshDecision(remote)
    if (decision === "ignore" || decision === "keep") {
      yield* fsSync("unlink", part, () => folder.fs.unlink(part))
      settlePart(folder.fs, part)
      return undefined
    }
    let conflictCopy: string | undefined
    if (decision === "conflict" && present && !present.isDirectory()) {
      const name = conflictPath(remote.path, new Date(), index.replicaId)
      conflictCopy = yield* fsSync("keep conflict copy", remote.path, () => folder.fs.linkUnique(remote.path, (n) => numbered(name, n)))
      yield* publishEvent(NodeEvent.ConflictKept({ path: remote.path, keptAs: conflictCopy! }))
      yield* Effect.logWarning(`conflict: ${showPath(remote.path)} changed here and on a peer; kept ours as ${showPath(conflictCopy)}`)
    } else if (present && !present.isDirectory()) {
      yield* keepReplaced(remote.path, present)
    } else if (present?.isDirectory()) {
      yield* fsSync("rmdir", remote.path, () => folder.fs.rmdir(remote.path)) // only if empty: never drop a tree
    }
    const copied = yield* fsSync("rename", part, () => placePart(folder.fs, part, remote.path))
    settlePart(folder.fs, part)
    yield* storeApplied(remote, local, copied ?? partStat, from)
    return conflictCopy
  })

/** A finished part file (or new symlink) of a peer's record, to be put in place. */
interface ReceivedPart {
  readonly remote: FileRecord
  readonly part: string
  /** The part's stat once complete, when known (it keeps it when renamed). */
  readonly partStat: fs.Stats | undefined
}

/**
 * The common case of `commitPart`, all synchronous: nothing is at the path, the index
 * agrees, and the peer's version wins (a new file). Renames the part into place and
 * returns the record to store; undefined, having changed nothing, for anything else
 * (then commitPart does it all, under the same lock: a rename across filesystems too).
 */
const renamedIntoFreePath = (
  disk: RootedFs,
  received: ReceivedPart,
  local: LocalRecord | undefined,
  from: string | undefined,
  replica: string
): NewRecord | undefined => {
  const { part, partStat, remote } = received
  if (partStat === undefined) return undefined
  try {
    if (disk.lstat(remote.path) !== undefined || !indexedAsOnDisk(local, undefined)) return undefined
    // (a conflict with nothing here keeps no copy: it is applied)
    const decision = decide(local, remote)
    if (decision !== "apply" && decision !== "conflict") return undefined
    disk.rename(part, remote.path)
  } catch {
    return undefined // commitPart tries again, and reports the error
  }
  settlePart(disk, part)
  return appliedRecord(remote, local, partStat, from, replica)
}

/**
 * Put received parts in place, their paths locked; per part, the conflict copy kept, or
 * why it failed. New files are renamed and indexed together (one index step for the
 * batch, not a dozen fiber steps each); any other goes through commitPart.
 */
const commitParts = (received: ReadonlyArray<ReceivedPart>, from: string | undefined) =>
  Effect.gen(function*() {
    const folder = yield* Folder
    const index = yield* FileIndex
    const locals = yield* index.getMany(received.map((r) => r.remote.path))
    const quick = folder.fs.batch(() => received.map((r, i) => renamedIntoFreePath(folder.fs, r, Option.getOrUndefined(locals[i]!), from, index.replicaId)))
    yield* index.putMany(quick.filter((record) => record !== undefined))
    const outcomes: Array<Either.Either<string | undefined, FsError | UnsafePath>> = []
    for (const [i, r] of received.entries()) {
      outcomes.push(quick[i] !== undefined ? Either.right(undefined) : yield* Effect.either(commitPart(r.remote, r.part, r.partStat, from)))
    }
    return outcomes
  })

/**
 * Apply a peer's deletion: the file goes to the trash, an empty directory is removed. A
 * directory that still holds files fails (and is tried again later): the deletions of
 * what is in it may be on their way from another peer, or come in a later batch; kept
 * for good, it would stay here while every other peer has dropped it. If what it holds
 * is there to stay (a file made in it concurrently), the tries run out and it stays.
 */
const applyDelete = (remote: FileRecord, peerId: string, from: string | undefined) =>
  Effect.gen(function*() {
    const folder = yield* Folder
    const index = yield* FileIndex
    const { local, decision, present } = yield* freshDecision(remote)
    if (decision === "ignore" || decision === "keep") return
    if (present?.isDirectory()) {
      yield* fsSync("remove folder", remote.path, () => folder.fs.rmdir(remote.path)) // (only if empty: never drop a tree)
    } else if (present) {
      // its blocks stay usable from the trash: the other half of a rename may come later
      const kept = yield* moveToTrash(remote.path)
      if (present.isFile()) yield* index.relocateBlocks(remote.path, kept)
    }
    yield* index.put({ ...remote, version: merge(local?.version ?? {}, remote.version), inode: 0, ...sentByOf(remote, from) })
    yield* Effect.logInfo(`deleted: ${showPath(remote.path)}`)
    yield* publishEvent(NodeEvent.FileDeleted({ path: remote.path, peerId }))
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

/**
 * Our version beat the peer's (concurrent edits, `keep`): announce ours again, under a
 * new sequence, so that the peer sees it after its own and takes it. The peer may have
 * seen ours only before its edit, or while a version since replaced there was current
 * (one we could not fetch before it was deleted): without this, a deletion that lost to
 * our edit there would never meet our edit again, and the two folders would stay apart.
 * Ends: the order of concurrent versions is strict, so the peer takes ours or has a
 * winner of its own, which we then take.
 */
const announceOurs = (remote: FileRecord) =>
  Effect.gen(function*() {
    const { local, decision } = yield* freshDecision(remote)
    if (decision !== "keep" || local === undefined) return
    const { sequence: _sequence, sentBy: _sentBy, ...ours } = local
    yield* (yield* FileIndex).put(ours)
  })

const applyDir = (remote: FileRecord, from: string | undefined) =>
  Effect.gen(function*() {
    const folder = yield* Folder
    const { local, decision, present } = yield* freshDecision(remote)
    if (decision === "ignore" || decision === "keep") return
    if (present && !present.isDirectory()) yield* moveToTrash(remote.path)
    yield* fsSync("mkdir", remote.path, () => {
      folder.fs.mkdirs(remote.path)
      folder.fs.chmodDir(remote.path, (remote.mode & 0o777) | 0o700)
    })
    yield* storeApplied(remote, local, undefined, from)
  })

/** Store the peer's version for content we already have; nothing on disk changes. */
const recordOnly = (remote: FileRecord, from: string | undefined) =>
  Effect.gen(function*() {
    const index = yield* FileIndex
    const { local, decision } = yield* freshDecision(remote)
    if (decision !== "record") return
    yield* index.put({ ...(local ?? { ...remote, inode: 0 }), version: merge(local?.version ?? {}, remote.version), ...sentByOf(remote, from) })
  })

type ApplyServices = FileIndex | Folder | Hasher | Events | Transfer

/** What a peer's record asks of this folder, decided before any download ("announce": ours won, see announceOurs). */
type Plan = "nothing" | "record" | "announce" | "delete" | "dir" | "fetch"

/**
 * What each of a peer's records asks of this folder, in order: refused, ignored or
 * already here, nothing; otherwise how it is applied. One look at the index and the
 * ignore rules for the batch (a peer's index comes a few hundred records at a time).
 */
const plansFor = (remotes: ReadonlyArray<FileRecord>) =>
  Effect.gen(function*() {
    const ignored = yield* (yield* Folder).ignoreMatcher
    const locals = yield* (yield* FileIndex).getMany(remotes.map((r) => r.path))
    const refused: Array<string> = []
    const plans = remotes.map((remote, i): Plan => {
      const valid = validatePeerPath(remote.path)
      if (Either.isLeft(valid)) {
        refused.push(`refused path from peer: ${showPath(remote.path)}: ${valid.left.reason}`)
        return "nothing"
      }
      if (ignored(remote.path, remote.kind === "dir")) return "nothing"
      const initial = decide(Option.getOrUndefined(locals[i]!), remote)
      if (initial === "ignore") return "nothing"
      if (initial === "keep") return "announce"
      if (initial === "record") return "record"
      if (remote.deleted) return "delete"
      return remote.kind === "dir" ? "dir" : "fetch"
    })
    yield* Effect.forEach(refused, (message) => Effect.logWarning(message), { discard: true })
    return plans
  })

/**
 * Which of a peer's records ask anything of this folder now? One of a version we hold,
 * or an older one (a peer announcing what it just received from us), asks nothing.
 */
export const needsApply = (remotes: ReadonlyArray<FileRecord>): Effect.Effect<ReadonlyArray<boolean>, never, Folder | FileIndex> =>
  Effect.map(plansFor(remotes), (plans) => plans.map((plan) => plan !== "nothing"))

/** A downloaded part file (or new symlink) goes into place under the path's lock; then say so. */
const commitReceived = (remote: FileRecord, source: BlockSource, fetched: Fetched, started: number, from: string | undefined) =>
  Effect.flatMap(Folder, (folder) => folder.withPathLock(remote.path)(commitParts([{ remote, part: fetched.part, partStat: fetched.stat }], from))).pipe(
    Effect.flatMap(([committed]) => committed!),
    Effect.flatMap((conflictCopy) => reportReceived(remote, source, fetched, started, conflictCopy))
  )

/** Say that a received file is in place (and index the conflict copy kept, if any). */
const reportReceived = (remote: FileRecord, source: BlockSource, fetched: Fetched, started: number, conflictCopy: string | undefined) =>
  Effect.gen(function*() {
    if (conflictCopy) yield* scanPath(conflictCopy)
    yield* Effect.logInfo(
      `received: ${showPath(remote.path)}` +
        (remote.kind === "file" ? ` (${remote.size} bytes, ${fetched.fetched} of ${remote.blocks.length} blocks from peer)` : ` (${remote.kind})`)
    )
    yield* publishEvent(NodeEvent.FileReceived({
      path: remote.path,
      peerId: source.peerId,
      kind: remote.kind,
      bytes: remote.size,
      fetchedBytes: fetched.fetchedBytes,
      durationMs: Date.now() - started
    }))
  })

/** Log and report a failed apply. False when worth another try later (a block was unavailable, a disk error). */
const failed = (remote: FileRecord, source: BlockSource, e: FsError | UnsafePath | BlockUnavailable) => {
  const reason = "reason" in e ? e.reason : e.message
  return Effect.logWarning(`could not apply ${showPath(remote.path)} from peer: ${printable(reason)}`).pipe(
    Effect.zipRight(publishEvent(NodeEvent.TransferFailed({ path: remote.path, peerId: source.peerId, reason }))),
    Effect.as(e._tag !== "FsError" && e._tag !== "BlockUnavailable")
  )
}

/**
 * Bring one record a peer announced into this folder, if it should win: download
 * outside the lock, then decide again and commit under the path's lock. Every
 * filesystem call goes through the folder's rooted calls, so none can leave it.
 * False when it failed in a way worth retrying (a block was unavailable, a disk error).
 * `from`: the session it came in (its id), kept with what is stored (SentBy).
 */
export const applyRemote = (remote: FileRecord, source: BlockSource, from?: string): Effect.Effect<boolean, never, ApplyServices> =>
  Effect.flatMap(plansFor([remote]), ([plan]) => applyPlanned(remote, plan!, source, from))

/** `applyRemote` once its plan is made. */
const applyPlanned = (remote: FileRecord, plan: Plan, source: BlockSource, from: string | undefined): Effect.Effect<boolean, never, ApplyServices> =>
  Effect.gen(function*() {
    const started = Date.now()
    const locked = (yield* Folder).withPathLock(remote.path)
    switch (plan) {
      case "nothing":
        return
      case "record":
        return yield* locked(recordOnly(remote, from))
      case "announce":
        return yield* locked(announceOurs(remote))
      case "delete":
        return yield* locked(applyDelete(remote, source.peerId, from))
      case "dir":
        return yield* locked(applyDir(remote, from))
      case "fetch": {
        const fetched = remote.kind === "file"
          ? yield* (yield* Transfer).fetch(remote, source)
          : { part: yield* symlinkToPart(remote), fetched: 0, fetchedBytes: 0 }
        return yield* commitReceived(remote, source, fetched, started, from)
      }
    }
  }).pipe(
    Effect.scoped,
    Effect.as(true),
    Effect.catchAll((e) => failed(remote, source, e))
  )

/** Files of at most one block: fetched many to a request by `applyRemoteFiles`. */
export const isSmallFile = (record: FileRecord): boolean => !record.deleted && record.kind === "file" && record.blocks.length <= 1

/**
 * `applyRemote` for many records at once, one outcome each, in order. The small files
 * among them to be fetched come in one request and are fsynced together
 * (Transfer.fetchFiles), then each goes into place as `applyRemote` would; the other
 * records are applied one by one.
 */
export const applyRemoteFiles = (
  remotes: ReadonlyArray<FileRecord>,
  source: BlockSource,
  from?: string
): Effect.Effect<ReadonlyArray<boolean>, never, ApplyServices> =>
  Effect.gen(function*() {
    const started = Date.now()
    const plans = yield* plansFor(remotes)
    const batch = remotes.flatMap((remote, i) => (plans[i] === "fetch" && isSmallFile(remote) ? [i] : []))
    const batched = new Set(batch)
    const outcomes: Array<boolean> = yield* Effect.forEach(remotes, (remote, i) =>
      batched.has(i) ? Effect.succeed(true) : applyPlanned(remote, plans[i]!, source, from))
    if (batch.length === 0) return outcomes
    const fetched = yield* (yield* Transfer).fetchFiles(batch.map((i) => remotes[i]!), source)
    // into place under their paths' locks, taken once for the batch
    const parts = batch.flatMap((i, at) => {
      const part = fetched[at]!
      return Either.isRight(part) ? [{ remote: remotes[i]!, part: part.right.part, partStat: part.right.stat }] : []
    })
    const committed = yield* (yield* Folder).withPathLocks(batch.map((i) => remotes[i]!.path))(commitParts(parts, from))
    let next = 0
    for (const [at, i] of batch.entries()) {
      const remote = remotes[i]!
      const part = fetched[at]!
      if (Either.isLeft(part)) {
        outcomes[i] = yield* failed(remote, source, part.left)
        continue
      }
      const done = committed[next++]!
      if (Either.isLeft(done)) outcomes[i] = yield* failed(remote, source, done.left)
      else yield* reportReceived(remote, source, part.right, started, done.right)
    }
    return outcomes
  }).pipe(Effect.scoped)
