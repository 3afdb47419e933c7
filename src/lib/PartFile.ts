import * as Effect from "effect/Effect"
import { randomBytes } from "node:crypto"
import * as path from "node:path"
import type * as Scope from "effect/Scope"
import { FsError } from "../domain/Errors.js"
import type { RootedFs } from "./RootedFs.js"

/** The name of our own temporary download files: `.dsync-<hex>-<hex>.part`. */
export const PART_FILE = /^\.dsync-[0-9a-f]+-[0-9a-f]+\.part$/

/** A path (relative, `/`-separated) whose last component is a part file: for matchers that see whole paths. */
export const PART_FILE_PATH = /(?:^|\/)\.dsync-[0-9a-f]+-[0-9a-f]+\.part$/

/**
 * This process's part files: a random prefix (another run's leftovers never collide) and
 * a counter. Random bytes per file cost 30 us each (OpenSSL checks for a fork every call).
 */
const partPrefix = randomBytes(4).toString("hex")
let partCounter = 0

/** A part file's path next to its target `relPath`, a name no other part file of this run has. */
export const partName = (relPath: string, tag: string) => {
  const dir = path.posix.dirname(relPath)
  const name = `.dsync-${tag}-${partPrefix}${(partCounter++).toString(16)}.part`
  return dir === "." ? name : `${dir}/${name}`
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
  /** Create a part file next to `relPath` with `create(part)`; throws what `create` throws. */
  readonly create: (relPath: string, tag: string, create: (part: string) => void) => string
  /** A part file name next to `relPath`, in progress from now: the caller creates it (or `remove`s it). */
  readonly reserve: (relPath: string, tag: string) => string
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
      const reserve = (relPath: string, tag: string) => {
        const part = partName(relPath, tag)
        registry.add(part)
        mine.add(part)
        return part
      }
      return {
        parts: mine,
        reserve,
        create: (relPath: string, tag: string, create: (part: string) => void) => {
          const part = reserve(relPath, tag)
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
 * Create one part file next to `relPath`, in progress while the scope is open; it is
 * removed when the scope closes with a failure.
 */
export const createPart = (disk: RootedFs, relPath: string, tag: string, create: (part: string) => void) =>
  Effect.gen(function*() {
    const files = yield* partFiles(disk)
    const part = yield* Effect.try({ try: () => files.create(relPath, tag, create), catch: (cause) => new FsError({ op: "create", path: relPath, cause }) })
    // runs before the release of `files`: a success keeps the part (renamed into place, or the caller's now)
    yield* Effect.addFinalizer((exit) => Effect.sync(() => exit._tag === "Success" && settlePart(disk, part)))
    return part
  })
