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
   * Run `effect`, which writes `paths` (quickly: a batch of small files), with them
   * `pending` from its start: the watcher's events for the first written come before the
   * last is. All are added when it ends, written or not.
   */
  readonly writing: (paths: ReadonlyArray<string>) => <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
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
    /** A batch is waiting for its delay: what is added meanwhile joins it, with no wake-up of its own. */
    let scheduled = false
    yield* Effect.forkScoped(Stream.fromQueue(wake).pipe(
      Stream.runForEach(() =>
        Effect.gen(function*() {
          yield* Effect.sleep(RECHECK_DELAY)
          const paths = [...pending]
          pending = new Set()
          scheduled = false
          yield* check(paths).pipe(Effect.catchAllCause((cause) => Effect.logWarning("rechecking written paths failed", cause)))
        })
      )
    ))
    // paths being written now, with how many writers each
    const inWrite = new Map<string, number>()
    const add = (path: string) =>
      Effect.suspend(() => {
        pending.add(path)
        if (scheduled) return Effect.void
        scheduled = true
        return Queue.offer(wake, undefined)
      })
    const recheck: Recheck = {
      add,
      writing: (paths) => (effect) =>
        Effect.acquireUseRelease(
          Effect.sync(() => paths.forEach((p) => inWrite.set(p, (inWrite.get(p) ?? 0) + 1))),
          () => effect,
          () =>
            Effect.forEach(paths, (p) => {
              const writers = inWrite.get(p)! - 1
              if (writers === 0) inWrite.delete(p)
              else inWrite.set(p, writers)
              return add(p)
            }, { discard: true })
        ),
      pending: (path) => pending.has(path) || inWrite.has(path)
    }
    return recheck
  })
