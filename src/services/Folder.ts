import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type { RootedFs } from "../lib/RootedFs.js"

/** Decides whether a relative path is excluded from sync. */
export type IgnoreMatcher = (relPath: string, isDir: boolean) => boolean

/** The synced folder: where it is, what is ignored, and who may touch a path right now. */
export interface FolderApi {
  /** Absolute real path of the folder. */
  readonly root: string
  /** Every filesystem call on a path inside the folder goes through here: it cannot leave the folder. */
  readonly fs: RootedFs
  readonly isIgnored: (relPath: string, isDir: boolean) => Effect.Effect<boolean>
  /** The rules of the moment as a plain function, for a batch of paths looked at at once. */
  readonly ignoreMatcher: Effect.Effect<IgnoreMatcher>
  /** Re-read `.dsyncignore` (after it changed on disk). */
  readonly reloadIgnore: Effect.Effect<void>
  /**
   * Run `effect` holding the lock of `relPath`: a local scan and the commit of a remote
   * change to the same path never interleave.
   */
  readonly withPathLock: (relPath: string) => <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** `withPathLock` for several paths, taken all at once (a batch of received files). */
  readonly withPathLocks: (relPaths: ReadonlyArray<string>) => <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
}

/** The synced folder. The default layer is `FolderLocal`. */
export class Folder extends Context.Tag("dsync/Folder")<Folder, FolderApi>() {}
