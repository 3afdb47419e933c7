import * as parcel from "@parcel/watcher"
import { Effect, Layer, Option, Queue, Stream } from "effect"
import { realpath } from "node:fs/promises"
import { FsError } from "../domain/Errors.js"
import { toRelative } from "../lib/SafePath.js"
import { Watcher } from "../services/Watcher.js"

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

        const onEvents: parcel.SubscribeCallback = (err, events) => {
          if (err) failure ??= new FsError({ op: "watch", path: root, cause: err })
          for (const event of events ?? []) {
            const rel = toRelative(base, event.path)
            if (rel !== undefined && !isStatePath(rel)) pending.add(rel)
          }
          if (failure !== undefined || pending.size > 0) Queue.unsafeOffer(wakeup, undefined)
        }

        yield* Effect.acquireRelease(
          Effect.tryPromise({
            // `ignore` keeps the native side from even watching .dsync/ (the filter above stays as a guard).
            try: () => parcel.subscribe(base, onEvents, { ignore: [".dsync"] }),
            catch: (cause) => new FsError({ op: "watch", path: root, cause })
          }),
          (subscription) => Effect.tryPromise(() => subscription.unsubscribe()).pipe(Effect.ignore)
        )

        const nextBatch = Effect.gen(function*() {
          yield* Queue.take(wakeup)
          if (failure !== undefined) return yield* Effect.fail(Option.some(failure))
          const batch = [...pending]
          pending.clear()
          return batch
        })
        return Stream.repeatEffectOption(nextBatch).pipe(Stream.filter((batch) => batch.length > 0))
      })
    )
})
