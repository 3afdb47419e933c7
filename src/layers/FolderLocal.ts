import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import type { FsError } from "../domain/Errors.js"
import { loadIgnore } from "../lib/Ignore.js"
import { makePathLocks } from "../lib/PathLocks.js"
import { RootedFs } from "../lib/RootedFs.js"
import { Folder, type FolderApi } from "../services/Folder.js"

/** A folder on the local disk; `.dsyncignore` is created on first run and read with the `-e` excludes. */
export const layer = (root: string, excludes: ReadonlyArray<string>): Layer.Layer<Folder, FsError> =>
  Layer.scoped(
    Folder,
    Effect.gen(function*() {
      const disk = yield* Effect.acquireRelease(Effect.sync(() => new RootedFs(root)), (d) => Effect.sync(() => d.close()))
      const matcher = yield* Ref.make(yield* loadIgnore(root, excludes))
      // held only while in use: as many as the scans and commits of the moment
      const locks = makePathLocks()
      const api: FolderApi = {
        root,
        fs: disk,
        isIgnored: (relPath, isDir) => Effect.map(Ref.get(matcher), (m) => m(relPath, isDir)),
        ignoreMatcher: Ref.get(matcher),
        reloadIgnore: loadIgnore(root, excludes).pipe(
          Effect.flatMap((m) => Ref.set(matcher, m)),
          Effect.catchAll((e) => Effect.logWarning(`cannot reload .dsyncignore: ${e.message}`))
        ),
        withPathLock: locks.withPath,
        withPathLocks: locks.withPaths
      }
      return api
    })
  )
