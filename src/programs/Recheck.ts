import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import * as Stream from "effect/Stream"

/** Long enough for the watcher's batch of our own write to have gone by. */
const RECHECK_DELAY = Duration.millis(750)

/**
 * Paths a peer's change was just written to, looked at again a moment later. A user's
 * edit right after ours can be folded by the watcher into our own event (a create then
 * a delete is reported as nothing): the second look finds it, so a local change never
 * depends on one watcher event arriving.
 */
export interface Recheck {
  readonly add: (path: string) => Effect.Effect<void>
  /**
   * Will `path` be looked at again, later than now? A watcher event for it can then be
   * left to that look: it finds whatever the event reports, and a received file is
   * not looked at twice for its own write.
   */
  readonly pending: (path: string) => boolean
}

/** Runs `check` on the paths added, in batches, RECHECK_DELAY after the first of each batch. Scoped. */
export const makeRecheck = <E, R>(check: (paths: ReadonlyArray<string>) => Effect.Effect<void, E, R>) =>
  Effect.gen(function*() {
    // a set: bounded by the distinct paths written within one delay
    let pending = new Set<string>()
    const wake = yield* Queue.sliding<void>(1)
    yield* Effect.forkScoped(Stream.fromQueue(wake).pipe(
      Stream.runForEach(() =>
        Effect.gen(function*() {
          yield* Effect.sleep(RECHECK_DELAY)
          const paths = [...pending]
          pending = new Set()
          yield* check(paths).pipe(Effect.catchAllCause((cause) => Effect.logWarning("rechecking written paths failed", cause)))
        })
      )
    ))
    const recheck: Recheck = {
      add: (path) =>
        Effect.suspend(() => {
          pending.add(path)
          return Queue.offer(wake, undefined)
        }),
      pending: (path) => pending.has(path)
    }
    return recheck
  })
