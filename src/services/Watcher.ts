import * as Context from "effect/Context"
import * as Stream from "effect/Stream"
import type { FsError } from "../domain/Errors.js"

/** Filesystem change notifications for a folder tree. */
export interface WatcherApi {
  /**
   * Batches of changed paths, relative to `root`, `/`-separated. A path in a batch may
   * have been created, modified or deleted: the consumer stats it to find out.
   * RESCAN_ALL in a batch means changes may have gone unreported: rescan everything.
   * The first batch is empty: it comes once the watch is in place, so a scan started
   * after it misses nothing.
   */
  readonly watch: (root: string) => Stream.Stream<ReadonlyArray<string>, FsError>
}

/** In a batch: anything may have changed (the watcher was briefly blind). */
export const RESCAN_ALL = ""

/** The change watcher. The default layer is `WatcherParcel` (@parcel/watcher). */
export class Watcher extends Context.Tag("dsync/Watcher")<Watcher, WatcherApi>() {}
