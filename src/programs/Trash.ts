import { Effect } from "effect"
import * as fsp from "node:fs/promises"
import * as path from "node:path"
import { FsError } from "../domain/Errors.js"

/** Content replaced or deleted by a peer is kept here this long. */
export const TRASH_RETENTION_DAYS = 30

export const trashRoot = (root: string) => path.join(root, ".dsync", "trash")

const stamp = (d: Date) => d.toISOString().replace(/[-:]/g, "").replace(/\..*$/, "").replace("T", "-")

const fsTry = <A>(op: string, p: string, f: () => Promise<A>) =>
  Effect.tryPromise({ try: f, catch: (cause) => new FsError({ op, path: p, cause }) })

/** Where the current content of `relPath` goes in the trash. */
const trashTarget = (root: string, relPath: string) =>
  fsTry("create", trashRoot(root), async () => {
    const target = path.join(trashRoot(root), stamp(new Date()), relPath)
    await fsp.mkdir(path.dirname(target), { recursive: true })
    return fsp.access(target).then(() => `${target}.${Date.now()}`, () => target)
  })

/** Keep a copy of a file that is about to be overwritten: a hard link, so the swap stays atomic. */
export const preserveInTrash = (root: string, relPath: string) =>
  Effect.gen(function*() {
    const abs = path.join(root, relPath)
    const target = yield* trashTarget(root, relPath)
    yield* fsTry("link", abs, () => fsp.link(abs, target).catch(() => fsp.copyFile(abs, target)))
  })

/** Move a file or symlink that a peer deleted into the trash. */
export const moveToTrash = (root: string, relPath: string) =>
  Effect.gen(function*() {
    const abs = path.join(root, relPath)
    const target = yield* trashTarget(root, relPath)
    yield* fsTry("move to trash", abs, () => fsp.rename(abs, target))
  })

/** Drop trash entries older than the retention period (run at start). */
export const purgeTrash = (root: string) =>
  Effect.gen(function*() {
    const dir = trashRoot(root)
    const entries = yield* fsTry("read", dir, () => fsp.readdir(dir)).pipe(Effect.orElseSucceed(() => [] as Array<string>))
    const cutoff = stamp(new Date(Date.now() - TRASH_RETENTION_DAYS * 86_400_000))
    for (const entry of entries) {
      if (/^\d{8}-\d{6}$/.test(entry) && entry < cutoff) {
        yield* fsTry("remove", entry, () => fsp.rm(path.join(dir, entry), { recursive: true, force: true })).pipe(Effect.ignore)
      }
    }
  })
