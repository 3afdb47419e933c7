import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { fsSync } from "../lib/FsTry.js"
import { FileIndex } from "../services/FileIndex.js"
import { Folder } from "../services/Folder.js"

/** Content replaced or deleted by a peer is kept here this long. */
export const TRASH_RETENTION_DAYS = 30

/** The trash, relative to the folder (`/`-separated, like index paths). */
export const TRASH_DIR = ".dsync/trash"

const stamp = (d: Date) => d.toISOString().replace(/[-:]/g, "").replace(/\..*$/, "").replace("T", "-")

/** `dir/name.ext` → `dir/name~N.ext`: a second copy of one path in one second keeps both. */
export const numbered = (relPath: string, n: number): string => {
  if (n === 0) return relPath
  const slash = relPath.lastIndexOf("/")
  const dot = relPath.lastIndexOf(".")
  return dot > slash + 1 ? `${relPath.slice(0, dot)}~${n}${relPath.slice(dot)}` : `${relPath}~${n}`
}

/**
 * Keep the current content of `relPath` in the trash under a name no other entry has
 * (a hard link: the file itself stays where it is, so a swap over it stays atomic).
 * Returns the copy's path relative to the folder.
 */
export const preserveInTrash = (relPath: string) =>
  Effect.flatMap(Folder, (folder) => {
    const base = `${TRASH_DIR}/${stamp(new Date())}/${relPath}`
    return fsSync("keep in trash", relPath, () => folder.fs.linkUnique(relPath, (n) => numbered(base, n)))
  })

/** Move a file or symlink that a peer deleted into the trash; returns where it went, relative to the folder. */
export const moveToTrash = (relPath: string) =>
  Effect.gen(function*() {
    const folder = yield* Folder
    const kept = yield* preserveInTrash(relPath)
    yield* fsSync("move to trash", relPath, () => folder.fs.unlink(relPath))
    return kept
  })

/** Drop trash entries older than the retention period (run at start). */
export const purgeTrash = Effect.gen(function*() {
  const index = yield* FileIndex
  const folder = yield* Folder
  const entries = yield* fsSync("read", TRASH_DIR, () => folder.fs.readdir(TRASH_DIR)).pipe(Effect.orElseSucceed(() => []))
  const cutoff = stamp(new Date(Date.now() - TRASH_RETENTION_DAYS * 86_400_000))
  for (const entry of entries) {
    if (entry.isDirectory() && /^\d{8}-\d{6}$/.test(entry.name) && entry.name < cutoff) {
      // the trash is ours (.dsync/ is never synced): removed by its real path, links not followed by rm
      yield* fsSync("remove", entry.name, () =>
        fs.rmSync(path.join(folder.root, TRASH_DIR, entry.name), { recursive: true, force: true })).pipe(Effect.ignore)
      yield* index.forgetBlocksUnder(`${TRASH_DIR}/${entry.name}/`)
    }
  }
})
