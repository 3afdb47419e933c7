import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import type { FsError } from "../domain/Errors.js"
import { loadIgnore } from "../lib/Ignore.js"
import { RootedFs } from "../lib/RootedFs.js"
import { Folder, type FolderApi } from "../services/Folder.js"

/** Striped locks: a fixed set, so memory stays bounded however many paths there are. */
const STRIPES = 64

const stripeOf = (relPath: string): number => {
  let h = 0
  for (let i = 0; i < relPath.length; i++) h = (h * 31 + relPath.charCodeAt(i)) | 0
  return Math.abs(h) % STRIPES
}

/** A folder on the local disk; `.dsyncignore` is created on first run and read with the `-e` excludes. */
export const layer = (root: string, excludes: ReadonlyArray<string>): Layer.Layer<Folder, FsError> =>
  Layer.scoped(
    Folder,
    Effect.gen(function*() {
      const disk = yield* Effect.acquireRelease(Effect.sync(() => new RootedFs(root)), (d) => Effect.sync(() => d.close()))
      const matcher = yield* Ref.make(yield* loadIgnore(root, excludes))
      const locks = yield* Effect.forEach(Array.from({ length: STRIPES }), () => Effect.makeSemaphore(1))
      const api: FolderApi = {
        root,
        fs: disk,
        isIgnored: (relPath, isDir) => Effect.map(Ref.get(matcher), (m) => m(relPath, isDir)),
        reloadIgnore: loadIgnore(root, excludes).pipe(
          Effect.flatMap((m) => Ref.set(matcher, m)),
          Effect.catchAll((e) => Effect.logWarning(`cannot reload .dsyncignore: ${e.message}`))
        ),
        withPathLock: (relPath) => (effect) => locks[stripeOf(relPath)]!.withPermits(1)(effect)
      }
      return api
    })
  )
