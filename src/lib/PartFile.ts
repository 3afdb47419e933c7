import * as Effect from "effect/Effect"
import { randomBytes } from "node:crypto"
import * as path from "node:path"
import { fsSync } from "./FsTry.js"
import type { RootedFs } from "./RootedFs.js"

/** The name of our own temporary download files: `.dsync-<hex>-<hex>.part`. */
export const PART_FILE = /^\.dsync-[0-9a-f]+-[0-9a-f]+\.part$/

/** A part file's path next to its target `relPath`. */
export const partName = (relPath: string, tag: string) => {
  const dir = path.posix.dirname(relPath)
  const name = `.dsync-${tag}-${randomBytes(4).toString("hex")}.part`
  return dir === "." ? name : `${dir}/${name}`
}

/** Part files being written, per folder: any other part file a scan finds is stale. */
const inProgress = new WeakMap<RootedFs, Set<string>>()

/**
 * Is `rel` the part file of a download in progress? A part file that is not was left
 * behind: by a run that stopped, or moved away from its download by a user who renamed
 * its folder meanwhile (the download then fails, and its cleanup no longer finds it).
 */
export const partInProgress = (disk: RootedFs, rel: string): boolean => inProgress.get(disk)?.has(rel) ?? false

/**
 * Create a part file next to `relPath`, known as in progress while the scope is open;
 * it is removed again if the scope closes with a failure.
 */
export const createPart = (disk: RootedFs, relPath: string, tag: string, create: (part: string) => void) =>
  Effect.gen(function*() {
    const part = partName(relPath, tag)
    let parts = inProgress.get(disk)
    if (parts === undefined) inProgress.set(disk, parts = new Set())
    const registry = parts
    yield* Effect.acquireRelease(
      Effect.zipRight(Effect.sync(() => registry.add(part)), fsSync("create", part, () => create(part))),
      (_, exit) => Effect.sync(() => {
        registry.delete(part)
        if (exit._tag === "Success") return
        try {
          disk.unlink(part)
        } catch { /* already renamed into place, or never made */ }
      })
    )
    return part
  })

