import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import type { Dirent, Stats } from "node:fs"
import * as path from "node:path"
import type { FsError } from "../domain/Errors.js"
import { fsSync } from "../lib/FsTry.js"
import { printable, showPath } from "../lib/Printable.js"
import { childOf } from "../lib/SafePath.js"
import { asTombstone, blockSizeFor, type FileKind, MIN_BLOCK_SIZE } from "../domain/FileRecord.js"
import { bump } from "../domain/VersionVector.js"
import { FileIndex, type LiveEntry, type LocalRecord, type NewRecord, type StatKey } from "../services/FileIndex.js"
import { Folder } from "../services/Folder.js"
import { Hasher } from "../services/Hasher.js"
import { Upcoming } from "../services/Upcoming.js"
import { letEventLoopTurn } from "../lib/EventLoop.js"
import { PART_DIR, PART_FILE, partInProgress } from "../lib/PartFile.js"
import type { RootedFs } from "../lib/RootedFs.js"
import { type Content, contentHashedAhead, hashAhead, hashFileContent } from "./Content.js"
import type { SmallFileHash } from "../lib/HashWorkers.js"

/** Files of a folder hashed ahead by `walk`, by path (see `hashAhead`). */
type HashedAhead = ReadonlyMap<string, SmallFileHash>

/** What a scan of a path found: nothing new, a new version, a file still being written, an ignored path, or an error (logged). */
export type ScanOutcome = "unchanged" | "changed" | "unstable" | "ignored" | "failed"

/**
 * A file modified this recently may still be being written: wait before sending it. A
 * writer that keeps writing (a copy in progress) keeps its mtime this fresh; one write
 * and close (an editor's save) is old enough a moment later. It is on the path of every
 * change to a peer, so it is short and polled finely: a 25 ms settle polled every 30 ms
 * was half of the 62-66 ms a new file took to reach a peer.
 */
const SETTLE_MS = 15
const SETTLE_POLL = Duration.millis(4)
/** A file that never settles (an endless log) is taken as it is after this long. */
const SETTLE_LIMIT_MS = 6_000

const kindOf = (st: Stats): FileKind | undefined =>
  st.isFile() ? "file" : st.isDirectory() ? "dir" : st.isSymbolicLink() ? "symlink" : undefined

/**
 * What is at `relPath` now: lstat, or undefined when nothing is there, or when it could
 * only be reached through a symlink (that is not a path of this folder).
 */
export const diskState = (relPath: string): Effect.Effect<Stats | undefined, FsError, Folder> =>
  Effect.flatMap(Folder, (folder) => fsSync("stat", relPath, () => folder.fs.lstat(relPath)))

/** What is at `relPath` now, for paths looked at in a batch; what cannot be stat'ed counts as gone. */
export const statOrGone = (disk: RootedFs, relPath: string): Stats | undefined => {
  try {
    return disk.lstat(relPath)
  } catch {
    return undefined
  }
}

/** What the index says of a path, as far as a scan compares it with the disk (a live entry is no tombstone). */
type Indexed = StatKey & { readonly deleted?: boolean }

/** Does the disk still look like what the index says (so the stored hash can be trusted)? */
export const statMatches = (record: Indexed, st: Stats | undefined): boolean => {
  if (record.deleted) return st === undefined
  if (st === undefined || kindOf(st) !== record.kind) return false
  if (record.kind === "dir") return (st.mode & 0o777) === record.mode
  if (record.kind === "file" && (st.mode & 0o777) !== record.mode) return false // chmod leaves mtime alone
  return st.size === record.size && st.mtimeMs === record.mtimeMs && st.ino === record.inode
}

/** A file or link that the disk shows just as the index holds it: a scan would find nothing. */
export const indexedAsIs = (known: Indexed | undefined, st: Stats | undefined): boolean =>
  known !== undefined && st !== undefined && !st.isDirectory() && statMatches(known, st)

/**
 * Which of `entries` of folder `relDir` (files and links) the disk shows just as the
 * index entries `known` (by name) hold them: one batch of lstats, their folder opened
 * once, without their locks (a commit halfway through shows as a difference, and a
 * difference is scanned under the lock). `known` was read as the folder's walk began:
 * what changed since then differs from it too, or brought a watcher event. An unchanged
 * rescan of 100,000 files, looked at one by one (an index read with its block list, a
 * folder opened, an lstat, a round of fiber steps each) took 5.8 s.
 */
const unchangedAmong = (relDir: string, entries: ReadonlyArray<Dirent>, known: ReadonlyMap<string, LiveEntry>) =>
  Effect.map(Folder, (folder) =>
    folder.fs.batch(() =>
      new Set(entries.flatMap((entry) => {
        const record = known.get(entry.name)
        const rel = childOf(relDir, entry.name)
        return record !== undefined && indexedAsIs(record, statOrGone(folder.fs, rel)) ? [rel] : []
      }))
    ))

/**
 * Smallest new file announced to peers while it is hashed (`Upcoming`), so its blocks
 * start moving before its record exists: below it, hashing takes a few milliseconds.
 */
export const ANNOUNCE_MIN_SIZE = 16 * 1024 * 1024

/**
 * Hash the new file `relPath` (of ANNOUNCE_MIN_SIZE or more) with it announced meanwhile,
 * with its first block's hash, where the node announces (a bare scan does not).
 */
const announcedContent = (disk: RootedFs, relPath: string, size: number) =>
  Effect.gen(function*() {
    const hashing = hashFileContent(disk, relPath, size)
    const upcoming = yield* Effect.serviceOption(Upcoming)
    if (Option.isNone(upcoming)) return yield* hashing
    const head = yield* fsSync("read", relPath, () => disk.readBlock(relPath, 0, blockSizeFor(size)))
    const first = (yield* Hasher).hash(head)
    return yield* upcoming.value.announcing({ path: relPath, size, first })(hashing)
  })

/** Record a local deletion of `existing`: a tombstone with a new version. */
const tombstone = (existing: LocalRecord) =>
  Effect.gen(function*() {
    const index = yield* FileIndex
    yield* index.put({ ...asTombstone(existing, Date.now()), inode: 0, version: bump(existing.version, index.replicaId) })
    yield* Effect.logInfo(`deleted locally: ${showPath(existing.path)}`)
  })

/**
 * Read what is on disk at `relPath` now, as a record without version and sequence, and
 * what is there once read (undefined: gone); a file is stat'ed through the descriptor it
 * was hashed from, not by walking its path again.
 */
const readEntry = (relPath: string, st: Stats, kind: FileKind, isNew: boolean, ahead?: HashedAhead) =>
  Effect.gen(function*() {
    const hasher = yield* Hasher
    const folder = yield* Folder
    const base = { path: relPath, kind, mtimeMs: st.mtimeMs, inode: st.ino, deleted: false }
    if (kind === "dir") {
      const entry = { ...base, size: 0, mode: st.mode & 0o777, hash: "", blockSize: MIN_BLOCK_SIZE, blocks: [] }
      return { entry, after: yield* diskState(relPath) }
    }
    if (kind === "symlink") {
      const target = yield* fsSync("readlink", relPath, () => folder.fs.readlink(relPath))
      const entry = { ...base, size: 0, mode: 0, hash: hasher.hash(Buffer.from(target)), target, blockSize: MIN_BLOCK_SIZE, blocks: [] }
      return { entry, after: yield* diskState(relPath) }
    }
    const { content, after } = contentHashedAhead(hasher, ahead?.get(relPath), st) ?? (yield* (isNew && st.size >= ANNOUNCE_MIN_SIZE
      ? announcedContent(folder.fs, relPath, st.size)
      : hashFileContent(folder.fs, relPath, st.size)))
    return { entry: fileEntry(relPath, st, content), after }
  })

/** A file's index entry, without version, as `st` shows it, with its `content`. */
const fileEntry = (relPath: string, st: Stats, content: Content) => ({
  path: relPath,
  kind: "file" as const,
  mtimeMs: st.mtimeMs,
  inode: st.ino,
  deleted: false,
  size: st.size,
  mode: st.mode & 0o777,
  ...content,
  blocks: [...content.blocks]
})

/**
 * Bring the index entry of one path up to date with the disk; the caller holds the
 * path's lock. A new version is made only when content, kind or mode changed; a file
 * that was modified a moment ago, or changes while being hashed, is reported unstable.
 */
export const scanLocked = (relPath: string, settle = true, ahead?: HashedAhead): Effect.Effect<ScanOutcome, FsError, FileIndex | Folder | Hasher> =>
  Effect.gen(function*() {
    const folder = yield* Folder
    const index = yield* FileIndex
    const st = yield* diskState(relPath)
    const existing = Option.getOrUndefined(yield* index.get(relPath))
    if (st === undefined) {
      if (existing === undefined || existing.deleted) return "unchanged" as const
      yield* tombstone(existing)
      return "changed" as const
    }
    const kind = kindOf(st)
    if (kind === undefined || (yield* folder.isIgnored(relPath, kind === "dir"))) return "ignored" as const
    if (existing && statMatches(existing, st)) return "unchanged" as const
    if (settle && kind === "file" && Date.now() - st.mtimeMs < SETTLE_MS) return "unstable" as const
    const isNew = existing === undefined || existing.deleted || existing.kind !== "file"
    const { entry, after } = yield* readEntry(relPath, st, kind, isNew, ahead)
    if (after === undefined || after.size !== st.size || after.mtimeMs !== st.mtimeMs) return "unstable" as const
    if (
      existing && !existing.deleted && existing.kind === entry.kind && existing.hash === entry.hash &&
      existing.size === entry.size && existing.mode === entry.mode
    ) {
      yield* index.touch(relPath, entry.mtimeMs, entry.inode)
      return "unchanged" as const
    }
    const record: NewRecord = { ...entry, version: bump(existing?.version ?? {}, index.replicaId) }
    yield* index.put(record)
    yield* Effect.logDebug(`indexed ${kind}: ${showPath(relPath)}`)
    return "changed" as const
  })

/** `scanLocked` under the path's lock; a failure is logged. */
const scanOnce = (relPath: string, settle: boolean, ahead?: HashedAhead): Effect.Effect<ScanOutcome, never, FileIndex | Folder | Hasher> =>
  Effect.flatMap(Folder, (folder) => folder.withPathLock(relPath)(scanLocked(relPath, settle, ahead))).pipe(
    Effect.catchAll((e) => Effect.as(Effect.logWarning(`cannot scan ${showPath(relPath)}: ${printable(e.message)}`), "failed" as const))
  )

/**
 * Scan a path, waiting while it is still being written, so a half-written file is not
 * announced. A file that never settles (an endless log) is taken as it is after a while.
 */
export const scanPath = (relPath: string, ahead?: HashedAhead): Effect.Effect<ScanOutcome, never, FileIndex | Folder | Hasher> =>
  Effect.gen(function*() {
    const deadline = Date.now() + SETTLE_LIMIT_MS
    while (Date.now() < deadline) {
      const outcome = yield* scanOnce(relPath, true, ahead)
      if (outcome !== "unstable") return outcome
      yield* Effect.sleep(SETTLE_POLL)
    }
    return yield* scanOnce(relPath, false)
  })

/** Entries of the index read at once when a vanished folder's contents are looked at. */
const MISSING_PAGE = 500

/**
 * Look again at everything the index holds under a directory that is gone (each
 * becomes a tombstone if it is gone too), a page at a time, an entry before the folders
 * holding it: memory stays flat whatever the size of the subtree.
 */
const scanMissingUnder = (dirPath: string) =>
  Effect.gen(function*() {
    const index = yield* FileIndex
    for (let before: string | undefined; ;) {
      const page = yield* index.liveUnder(dirPath, MISSING_PAGE, before)
      yield* Effect.forEach(page, (r) => scanPath(r.path), { discard: true })
      if (page.length < MISSING_PAGE) return
      before = page[page.length - 1]!.path
    }
  })

/**
 * A folder that is gone: what the index held in it, then the folder itself, become
 * tombstones (each if gone), so peers see its contents go before the folder.
 */
export const vanishedFolder = (relDir: string) => Effect.asVoid(Effect.zipRight(scanMissingUnder(relDir), scanPath(relDir)))

/** Remove our part file `rel` unless a download in progress holds it (one left by a run that stopped, or moved away from its download). */
const removeIfStale = (rel: string) =>
  Effect.flatMap(Folder, (folder) =>
    partInProgress(folder.fs, rel)
      ? Effect.void
      : fsSync("unlink", rel, () => folder.fs.unlink(rel)).pipe(
        Effect.zipRight(Effect.logDebug(`removed stale partial file ${showPath(rel)}`)),
        Effect.ignore
      ))

/** One of our part files: a download's, or a symlink's to be renamed into place. */
const isOurPart = (entry: Dirent) => (entry.isFile() || entry.isSymbolicLink()) && PART_FILE.test(entry.name)

/** Our stale part files in the part folder (see removeIfStale). */
const removeStaleParts = Effect.gen(function*() {
  const folder = yield* Folder
  const entries = yield* fsSync("read", PART_DIR, () => folder.fs.readdir(PART_DIR)).pipe(Effect.orElseSucceed(() => []))
  for (const entry of entries) if (isOurPart(entry)) yield* removeIfStale(`${PART_DIR}/${entry.name}`)
})

/**
 * Look again at what the index held in a folder (`known`, read before its entries were
 * scanned) that its listing `entries` lacks, each becoming a tombstone if it is gone;
 * and at the contents of a folder that is no folder any more (the walk did not go into
 * it). A folder's contents come before the folder. Ignored ones are left as they are.
 */
const scanVanished = (known: ReadonlyArray<LiveEntry>, entries: ReadonlyArray<Dirent>) =>
  Effect.gen(function*() {
    const folder = yield* Folder
    const isFolder = new Map(entries.map((entry) => [entry.name, entry.isDirectory()]))
    for (const record of known) {
      const onDisk = isFolder.get(path.posix.basename(record.path))
      if (onDisk === true || (onDisk === false && record.kind !== "dir")) continue // walked
      if (yield* folder.isIgnored(record.path, record.kind === "dir")) continue
      if (record.kind === "dir") yield* scanMissingUnder(record.path)
      if (onDisk === undefined) yield* scanPath(record.path)
    }
  })

/**
 * Entries of a folder walked a batch at a time, the next batch's new files hashed ahead
 * meanwhile: what is held ahead stays bounded whatever the size of the folder.
 */
const WALK_BATCH = 256

/**
 * `batch` of folder `relDir`'s entries without the ignored ones (each looked up once; our
 * part files stay, `walkEntries` deals with them), and its files that the index lacks
 * there (`known`, by name) hashed ahead.
 */
const prepareBatch = (relDir: string, batch: ReadonlyArray<Dirent>, known: ReadonlyMap<string, LiveEntry>) =>
  Effect.gen(function*() {
    const folder = yield* Folder
    const entries: Array<Dirent> = []
    const newFiles: Array<string> = []
    for (const entry of batch) {
      const part = isOurPart(entry)
      if (!part && (yield* folder.isIgnored(childOf(relDir, entry.name), entry.isDirectory()))) continue
      entries.push(entry)
      if (!part && entry.isFile() && !known.has(entry.name)) newFiles.push(entry.name)
    }
    return { entries, ahead: yield* hashAhead(folder.fs, relDir, newFiles) }
  })

/**
 * Walk the folder (never following symlinks), skipping ignored paths, counting the
 * entries seen in `seen`; what the index held in a folder and its listing lacks is looked
 * at again (deletions while we were away). A folder's new files are read and hashed
 * ahead on a hash worker, where there are some, a batch ahead of the entries being
 * indexed: read one by one on the main thread they waited on the disk (a first index of
 * 100,000 small files, cold: 28-30 s, 17 s ahead). A walker holds one folder's listing and
 * index entries at a time, whatever the size of the tree. Our partial downloads that no
 * download is writing are removed (left by a previous run, or by a download whose
 * folder was moved).
 */
const walk = (relDir: string, seen: { count: number }): Effect.Effect<void, never, FileIndex | Folder | Hasher> =>
  Effect.gen(function*() {
    const folder = yield* Folder
    const index = yield* FileIndex
    // never through a link: a folder replaced by a symlink is not read at all
    const listed = yield* fsSync("read folder", relDir, () => folder.fs.readdir(relDir)).pipe(Effect.either)
    if (Either.isLeft(listed)) {
      // gone since it was seen (the old name of a folder just renamed, replaced by a link):
      // what it held went with it; else (unreadable) nothing in it is taken for deleted
      const gone = relDir !== "" &&
        (yield* diskState(relDir).pipe(Effect.map((st) => !st?.isDirectory()), Effect.orElseSucceed(() => false)))
      if (gone) return yield* vanishedFolder(relDir)
      return yield* Effect.logWarning(`cannot read folder ${showPath(relDir || ".")}: ${printable(listed.left.message)}`)
    }
    // what the index holds in this folder, by name
    const known = new Map((yield* index.liveChildren(relDir)).map((record) => [path.posix.basename(record.path), record]))
    const batches: Array<ReadonlyArray<Dirent>> = []
    for (let i = 0; i < listed.right.length; i += WALK_BATCH) batches.push(listed.right.slice(i, i + WALK_BATCH))
    let next = yield* Effect.fork(prepareBatch(relDir, batches[0] ?? [], known))
    for (let i = 0; i < batches.length; i++) {
      const { entries, ahead } = yield* Fiber.join(next)
      if (i + 1 < batches.length) next = yield* Effect.fork(prepareBatch(relDir, batches[i + 1]!, known))
      yield* walkEntries(relDir, entries, ahead, known, seen)
    }
    yield* scanVanished([...known.values()], listed.right)
  })

/**
 * The common case of a first scan, a batch at once: new files hashed ahead (`rels`) that
 * are still what was hashed (same inode, size and mtime) and settled, indexed under the
 * batch's locks with one index write; what `scanLocked` would do for each, without its
 * dozens of fiber steps per file. Returns the paths indexed; any other is left to
 * `scanPath`.
 */
const indexHashedAhead = (rels: ReadonlyArray<string>, ahead: HashedAhead) =>
  Effect.gen(function*() {
    const folder = yield* Folder
    const index = yield* FileIndex
    const hasher = yield* Hasher
    return yield* folder.withPathLocks(rels)(Effect.gen(function*() {
      const locals = yield* index.getMany(rels)
      const now = Date.now()
      const records: Array<NewRecord> = []
      folder.fs.batch(() => rels.forEach((rel, i) => {
        const existing = Option.getOrUndefined(locals[i]!)
        if (existing !== undefined && !existing.deleted) return
        const st = statOrGone(folder.fs, rel)
        if (st === undefined || !st.isFile() || now - st.mtimeMs < SETTLE_MS) return
        const hashed = contentHashedAhead(hasher, ahead.get(rel), st)
        if (hashed === undefined || hashed.after.size !== st.size || hashed.after.mtimeMs !== st.mtimeMs) return
        records.push({ ...fileEntry(rel, st, hashed.content), version: bump(existing?.version ?? {}, index.replicaId) })
      }))
      yield* index.putMany(records)
      yield* Effect.forEach(records, (r) => Effect.logDebug(`indexed file: ${showPath(r.path)}`), { discard: true })
      return new Set(records.map((r) => r.path))
    }))
  })

/** `walk`'s work on `entries` of folder `relDir` (none ignored): new files hashed ahead at once, the others a few at a time. */
const walkEntries = (
  relDir: string,
  entries: ReadonlyArray<Dirent>,
  ahead: HashedAhead,
  known: ReadonlyMap<string, LiveEntry>,
  seen: { count: number }
) =>
  Effect.gen(function*() {
    const relOf = (entry: Dirent) => childOf(relDir, entry.name)
    const indexedAhead = ahead.size === 0 ? new Set<string>() : yield* indexHashedAhead([...ahead.keys()], ahead)
    const notAhead = entries.filter((entry) => !indexedAhead.has(relOf(entry)))
    // most files of a rescan, and of a folder walked again, are as indexed: no lock taken
    const asIndexed = yield* unchangedAmong(relDir, notAhead.filter((entry) => !isOurPart(entry) && !entry.isDirectory()), known)
    seen.count += indexedAhead.size + asIndexed.size
    yield* Effect.forEach(notAhead.filter((entry) => !asIndexed.has(relOf(entry))), (entry) =>
      Effect.gen(function*() {
        const rel = relOf(entry)
        if (isOurPart(entry)) return yield* removeIfStale(rel)
        seen.count++
        yield* letEventLoopTurn // peers are served while a long scan runs
        yield* scanPath(rel, ahead)
        if (entry.isDirectory()) yield* walk(rel, seen)
      }), { discard: true, concurrency: 4 })
  })

/** Scan a directory that appeared (created or moved in): its contents may bring no events of their own. */
export const scanTree = (relDir: string) => walk(relDir, { count: 0 })

/**
 * Full scan: index everything on disk, and record as deleted what vanished while we were
 * away (or since the last scan). Returns the number of entries seen.
 */
export const scanAll: Effect.Effect<number, never, FileIndex | Folder | Hasher> = Effect.gen(function*() {
  const seen = { count: 0 }
  yield* removeStaleParts
  yield* walk("", seen)
  return seen.count
})
