import { Context, Stream } from "effect"
import type { FsError } from "../domain/Errors.js"

/** Filesystem change notifications for a folder tree. */
export interface WatcherApi {
  /**
   * Batches of changed paths, relative to `root`, `/`-separated. A path in a batch may
   * have been created, modified or deleted: the consumer stats it to find out.
   */
  readonly watch: (root: string) => Stream.Stream<ReadonlyArray<string>, FsError>
}

export class Watcher extends Context.Tag("dsync/Watcher")<Watcher, WatcherApi>() {}
