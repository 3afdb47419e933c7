import * as parcel from "@parcel/watcher"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import * as Stream from "effect/Stream"
import { lstatSync, readdirSync } from "node:fs"
import { realpath } from "node:fs/promises"
import * as path from "node:path"
import { FsError } from "../domain/Errors.js"
import { PART_FILE, PART_FILE_PATH } from "../lib/PartFile.js"
import { toRelative } from "../lib/SafePath.js"
import { RESCAN_ALL, Watcher } from "../services/Watcher.js"

const RESUBSCRIBE_INTERVAL_MS = 1000

/**
 * A new directory that already holds directories: those appeared before the backend
 * could watch them (`mkdir -p a/b`), so they may have no watch. (Files inside a new
 * directory are found by the consumer's rescan of it; later changes to them are seen.)
 */
const holdsDirectory = (abs: string): boolean => {
  // most creates are files: an lstat says so without the throw a readdir of a file costs
  // (30 us a received file, most of it the exception's stack)
  if (lstatSync(abs, { throwIfNoEntry: false })?.isDirectory() !== true) return false
  try {
    return readdirSync(abs, { withFileTypes: true }).some((entry) => entry.isDirectory())
  } catch {
    return false // gone already
  }
}

/** Our state folder changes on every index write: never report it. */
const isStatePath = (rel: string) => rel === ".dsync" || rel.startsWith(".dsync/")

/**
 * File events from @parcel/watcher (inotify, FSEvents, ReadDirectoryChangesW).
 *
 * Coalescing: events are added to a Set of pending paths and a one-slot sliding queue
 * wakes the consumer. While the consumer is busy, further changes only grow the Set
 * (a path changed twice is reported once), so nothing is dropped and memory is bounded
 * by the number of distinct changed paths. Each pull takes everything pending.
 *
 * A renamed or deleted directory may be reported by its own path only: the consumer
 * stats each path and rescans directories. On a watcher error the stream fails with
 * FsError (pending paths are dropped: the consumer should rescan after a failure).
 */
export const layer: Layer.Layer<Watcher> = Layer.succeed(Watcher, {
  watch: (root) =>
    Stream.unwrapScoped(
      Effect.gen(function*() {
        // Relativize against the real path: FSEvents reports resolved paths (/private/var...).
        const base = yield* Effect.tryPromise({
          try: () => realpath(root),
          catch: (cause) => new FsError({ op: "watch", path: root, cause })
        })
        const pending = new Set<string>()
        let failure: FsError | undefined
        const wakeup = yield* Queue.sliding<void>(1)

        let newDirectory = false
        const onEvents: parcel.SubscribeCallback = (err, events) => {
          if (err) failure ??= new FsError({ op: "watch", path: root, cause: err })
          for (const event of events ?? []) {
            const rel = toRelative(base, event.path)
            // our own downloads' part files: a received file is three events, one of them its own
            if (rel === undefined || isStatePath(rel) || PART_FILE.test(path.posix.basename(rel))) continue
            pending.add(rel)
            if (event.type === "create" && !newDirectory) newDirectory = holdsDirectory(event.path)
          }
          if (failure !== undefined || pending.size > 0) Queue.unsafeOffer(wakeup, undefined)
        }

        // `ignore` keeps the native side from even watching .dsync/, and from a stat and an
        // event per block written to our part files (2,048 for a 1 GiB download); the
        // filter above stays as a guard.
        const subscribe = Effect.tryPromise({
          try: () => parcel.subscribe(base, onEvents, { ignore: [".dsync", PART_FILE_PATH] }),
          catch: (cause) => new FsError({ op: "watch", path: root, cause })
        })
        const unsubscribe = (s: parcel.AsyncSubscription) => Effect.tryPromise(() => s.unsubscribe()).pipe(Effect.ignore)
        const scope = yield* Effect.scope
        let subscription: parcel.AsyncSubscription = yield* subscribe
        yield* Effect.addFinalizer(() => unsubscribe(subscription))
        let lastResubscribe = 0

        /**
         * inotify needs a watch per directory, added when the backend sees the directory
         * appear: folders created in quick succession (`mkdir -p a/b`) can end up with no
         * watch, so nothing inside them would ever be reported. After such a directory we
         * subscribe afresh (the backend walks the whole tree again), at most once a second.
         * The old subscription goes first (parcel shares native watches between live
         * subscriptions, and removing the old one could drop the new one's), so for a few
         * milliseconds nothing is watched: a batch with RESCAN_ALL follows.
         */
        const rewatch = Effect.gen(function*() {
          const wait = lastResubscribe + RESUBSCRIBE_INTERVAL_MS - Date.now()
          if (wait > 0) yield* Effect.sleep(wait)
          newDirectory = false
          // uninterruptible: closing mid-swap must not leave a subscription behind
          yield* Effect.uninterruptible(Effect.gen(function*() {
            yield* unsubscribe(subscription)
            subscription = yield* subscribe
          }))
          lastResubscribe = Date.now()
          pending.add(RESCAN_ALL)
          Queue.unsafeOffer(wakeup, undefined)
        }).pipe(Effect.catchAll((e) => Effect.sync(() => (failure ??= e))))
        // Re-subscribing runs beside the stream, so other changes keep flowing meanwhile.
        const rewatching = yield* Ref.make(false)
        const scheduleRewatch = Effect.flatMap(Ref.getAndSet(rewatching, true), (running) =>
          running ? Effect.void : Effect.forkIn(Effect.ensuring(rewatch, Ref.set(rewatching, false)), scope))

        const nextBatch = Effect.gen(function*() {
          yield* Queue.take(wakeup)
          if (failure !== undefined) return yield* Effect.fail(Option.some(failure))
          if (newDirectory) yield* scheduleRewatch
          const batch = [...pending]
          pending.clear()
          return batch
        })
        // an empty batch first: the watch is in place from here on
        return Stream.concat(Stream.make([]), Stream.repeatEffectOption(nextBatch).pipe(Stream.filter((batch) => batch.length > 0)))
      })
    )
})
