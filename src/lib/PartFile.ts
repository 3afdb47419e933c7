import * as Effect from "effect/Effect"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import type * as Scope from "effect/Scope"
import { FsError } from "../domain/Errors.js"
import type { RootedFs } from "./RootedFs.js"

/** The name of our own temporary download files: `.dsync-<hex>-<hex>.part`. */
export const PART_FILE = /^\.dsync-[0-9a-f]+-[0-9a-f]+\.part$/

/** A path (relative, `/`-separated) whose last component is a part file: for matchers that see whole paths. */
export const PART_FILE_PATH = /(?:^|\/)\.dsync-[0-9a-f]+-[0-9a-f]+\.part$/

/**
 * Where downloads are written: a folder of our own state, which the watcher does not
 * watch. A file received is then one event in its folder (the rename into place), not
 * five (create, writes, times, close, rename) that the watcher's thread reads and
 * filters out: measured on 100,000 files, its CPU 1.4-1.6 s against 3.7-4.0 s.
 */
export const PART_DIR = ".dsync/parts"

/**
 * This process's part files: a random prefix (another run's leftovers never collide) and
 * a counter. Random bytes per file cost 30 us each (OpenSSL checks for a fork every call).
 */
const partPrefix = randomBytes(4).toString("hex")
let partCounter = 0

const HEX = /^[0-9a-f]+$/

/** A new part file name; `tag` (hex, else "0") says what it is for, to whoever looks. */
const uniqueName = (tag: string) => `.dsync-${HEX.test(tag) ? tag : "0"}-${partPrefix}${(partCounter++).toString(16)}.part`

/** Where a part file for `relPath` goes: the part folder, or `beside` its target. */
export type PartPlace = "parts" | "beside"

/** A part file's path for target `relPath` (in PART_DIR, or beside it), a name no other part file of this run has. */
export const partName = (relPath: string, tag: string, place: PartPlace = "parts") => {
  if (place === "parts") return `${PART_DIR}/${uniqueName(tag)}`
  const dir = path.posix.dirname(relPath)
  return dir === "." ? uniqueName(tag) : `${dir}/${uniqueName(tag)}`
}

/** Part files being written, per folder: any other part file a scan finds is stale. */
const inProgress = new WeakMap<RootedFs, Set<string>>()

const registryOf = (disk: RootedFs): Set<string> => {
  let parts = inProgress.get(disk)
  if (parts === undefined) inProgress.set(disk, parts = new Set())
  return parts
}

/**
 * Is `rel` the part file of a download in progress? A part file that is not was left
 * behind: by a run that stopped, or moved away from its download by a user who renamed
 * its folder meanwhile (the download then fails, and its cleanup no longer finds it).
 */
export const partInProgress = (disk: RootedFs, rel: string): boolean => inProgress.get(disk)?.has(rel) ?? false

/** The part file is gone: renamed into place, or removed. It is no longer in progress. */
export const settlePart = (disk: RootedFs, part: string): void => void inProgress.get(disk)?.delete(part)

/**
 * Part files made in one scope, plain synchronous calls (a batch of small downloads
 * makes many). Each is in progress from its creation until settled (`settlePart`);
 * whichever is not settled when the scope closes is removed.
 */
export interface PartFiles {
  /** Create a part file for `relPath` with `create(part)`; throws what `create` throws. */
  readonly create: (relPath: string, tag: string, create: (part: string) => void, place?: PartPlace) => string
  /** A part file name for `relPath`, in progress from now: the caller creates it (or `remove`s it). */
  readonly reserve: (relPath: string, tag: string, place?: PartPlace) => string
  /** Remove a part file now (its download failed). */
  readonly remove: (part: string) => void
}

/** A scope's part files (see PartFiles). */
export const partFiles = (disk: RootedFs): Effect.Effect<PartFiles, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const registry = registryOf(disk)
      const mine = new Set<string>()
      const remove = (part: string) => {
        mine.delete(part)
        if (!registry.delete(part)) return // settled: renamed into place or removed
        try {
          disk.unlink(part)
        } catch { /* never made */ }
      }
      const reserve = (relPath: string, tag: string, place?: PartPlace) => {
        const part = partName(relPath, tag, place)
        registry.add(part)
        mine.add(part)
        return part
      }
      return {
        parts: mine,
        reserve,
        create: (relPath: string, tag: string, create: (part: string) => void, place?: PartPlace) => {
          const part = reserve(relPath, tag, place)
          try {
            create(part)
          } catch (e) {
            remove(part)
            throw e
          }
          return part
        },
        remove
      }
    }),
    (files) => Effect.sync(() => [...files.parts].forEach(files.remove))
  )

/**
 * Create one part file for `relPath`, in progress while the scope is open; it is
 * removed when the scope closes with a failure.
 */
export const createPart = (disk: RootedFs, relPath: string, tag: string, create: (part: string) => void, place?: PartPlace) =>
  Effect.gen(function*() {
    const files = yield* partFiles(disk)
    const part = yield* Effect.try({ try: () => files.create(relPath, tag, create, place), catch: (cause) => new FsError({ op: "create", path: relPath, cause }) })
    // runs before the release of `files`: a success keeps the part (renamed into place, or the caller's now)
    yield* Effect.addFinalizer((exit) => Effect.sync(() => exit._tag === "Success" && settlePart(disk, part)))
    return part
  })

/**
 * Rename the finished part file `part` over `target` (see RootedFs.rename). A target on
 * another filesystem than the part folder (a mount inside the synced folder: EXDEV)
 * gets a copy of the part made beside it first, with its mode and mtime, fsynced, and
 * renamed over it: the target still holds the old content or the new, never a torn one.
 * Returns the stat of the copy put in place, or undefined when the part itself was.
 */
export const placePart = (disk: RootedFs, part: string, target: string): fs.Stats | undefined => {
  try {
    disk.rename(part, target)
    return undefined
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EXDEV") throw e
  }
  const registry = registryOf(disk)
  const beside = partName(target, "c", "beside")
  registry.add(beside) // in progress: a scan meanwhile leaves it
  try {
    const original = disk.lstat(part)
    if (original === undefined) throw Object.assign(new Error(`ENOENT: ${part} is gone`), { code: "ENOENT" })
    disk.linkNew(part, beside) // (a copy: no link crosses filesystems)
    const st = syncedCopy(disk, beside, original)
    disk.rename(beside, target)
    registry.delete(beside)
    try {
      disk.unlink(part)
    } catch { /* left for the next start's cleanup */ }
    return st
  } catch (e) {
    if (registry.delete(beside)) {
      try {
        disk.unlink(beside)
      } catch { /* never made */ }
    }
    throw e
  }
}

/** Give the copy `rel` the original's mtime, fsync it, and return its stat (through one descriptor). */
const syncedCopy = (disk: RootedFs, rel: string, original: fs.Stats): fs.Stats => {
  const fd = disk.openRead(rel)
  try {
    fs.futimesSync(fd, original.atimeMs / 1000, original.mtimeMs / 1000)
    fs.fsyncSync(fd)
    return fs.fstatSync(fd)
  } finally {
    fs.closeSync(fd)
  }
}
