import { Effect } from "effect"
import * as fsp from "node:fs/promises"
import * as path from "node:path"
import { fsTry } from "../lib/FsTry.js"
import { FileIndex } from "../services/FileIndex.js"

/** Content replaced or deleted by a peer is kept here this long. */
export const TRASH_RETENTION_DAYS = 30

/** The trash, relative to the folder (`/`-separated, like index paths). */
export const TRASH_DIR = ".dsync/trash"
export const trashRoot = (root: string) => path.join(root, ".dsync", "trash")

const stamp = (d: Date) => d.toISOString().replace(/[-:]/g, "").replace(/\..*$/, "").replace("T", "-")


/** Where the current content of `relPath` goes in the trash, relative to the folder. */
const trashTarget = (root: string, relPath: string) =>
  fsTry("create", trashRoot(root), async () => {
    const rel = `${TRASH_DIR}/${stamp(new Date())}/${relPath}`
    await fsp.mkdir(path.dirname(path.join(root, rel)), { recursive: true })
    return fsp.access(path.join(root, rel)).then(() => `${rel}.${Date.now()}`, () => rel)
  })

/**
 * Keep a copy of a file that is about to be overwritten: a hard link, so the swap stays
 * atomic. Returns the copy's path relative to the folder.
 */
export const preserveInTrash = (root: string, relPath: string) =>
  Effect.gen(function*() {
    const abs = path.join(root, relPath)
    const target = yield* trashTarget(root, relPath)
    const targetAbs = path.join(root, target)
    yield* fsTry("link", abs, () => fsp.link(abs, targetAbs).catch(() => fsp.copyFile(abs, targetAbs)))
    return target
  })

/** Move a file or symlink that a peer deleted into the trash; returns where it went, relative to the folder. */
export const moveToTrash = (root: string, relPath: string) =>
  Effect.gen(function*() {
    const abs = path.join(root, relPath)
    const target = yield* trashTarget(root, relPath)
    yield* fsTry("move to trash", abs, () => fsp.rename(abs, path.join(root, target)))
    return target
  })

/** Drop trash entries older than the retention period (run at start). */
export const purgeTrash = (root: string) =>
  Effect.gen(function*() {
    const index = yield* FileIndex
    const dir = trashRoot(root)
    const entries = yield* fsTry("read", dir, () => fsp.readdir(dir)).pipe(Effect.orElseSucceed(() => [] as Array<string>))
    const cutoff = stamp(new Date(Date.now() - TRASH_RETENTION_DAYS * 86_400_000))
    for (const entry of entries) {
      if (/^\d{8}-\d{6}$/.test(entry) && entry < cutoff) {
        yield* fsTry("remove", entry, () => fsp.rm(path.join(dir, entry), { recursive: true, force: true })).pipe(Effect.ignore)
        yield* index.forgetBlocksUnder(`${TRASH_DIR}/${entry}/`)
      }
    }
  })
