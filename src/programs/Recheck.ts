import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"

/**
 * Long enough for the watcher's batch holding our own write to have gone by:
 * @parcel/watcher reports a batch 50 ms after its last event, or at the latest 500 ms
 * after the one before.
 */
const RECHECK_DELAY_MS = 750
/** Paths falling due this close together are looked at in one batch. */
const GATHER_MS = 50

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

/**
 * Runs `check` on the paths added, each RECHECK_DELAY after it was (last) added, in
 * batches of those falling due within GATHER_MS of each other. Scoped.
 *
 * The delay counts from each path's own write, not from the first of a batch: the
 * watcher folds a create and a delete within one of its batches (up to ~550 ms apart
 * under steady events) into nothing, so a path looked at sooner after its write could
 * be deleted by the user just after the look, and that deletion never reported.
 */
export const makeRecheck = <E, R>(check: (paths: ReadonlyArray<string>) => Effect.Effect<void, E, R>) =>
  Effect.gen(function*() {
    // path -> when it was last added, oldest first (a path added again moves to the end):
    // bounded by the distinct paths written within one delay
    const due = new Map<string, number>()
    const wake = yield* Queue.sliding<void>(1)
    // read once: a path is added per received file, and each Clock.currentTimeMillis is three fiber steps
    const clock = yield* Effect.clock
    /** The loop below is running: what is added meanwhile needs no wake-up of its own. */
    let scheduled = false
    const takeDue = (now: number) => {
      const paths: Array<string> = []
      for (const [path, added] of due) {
        if (added + RECHECK_DELAY_MS > now) break
        paths.push(path)
        due.delete(path)
      }
      return paths
    }
    const drain = Effect.gen(function*() {
      while (due.size > 0) {
        const oldest: number = due.values().next().value!
        const wait = oldest + RECHECK_DELAY_MS + GATHER_MS - clock.unsafeCurrentTimeMillis()
        if (wait > 0) yield* Effect.sleep(Duration.millis(wait))
        const paths = takeDue(clock.unsafeCurrentTimeMillis())
        if (paths.length === 0) continue
        yield* check(paths).pipe(Effect.catchAllCause((cause) => Effect.logWarning("rechecking written paths failed", cause)))
      }
      scheduled = false
    })
    yield* Effect.forkScoped(Effect.forever(Effect.zipRight(Queue.take(wake), drain)))
    // paths being written now, with how many writers each
    const inWrite = new Map<string, number>()
    /** Paths due from now (one wake-up for all). */
    const addAll = (paths: ReadonlyArray<string>) =>
      Effect.suspend(() => {
        const now = clock.unsafeCurrentTimeMillis()
        for (const path of paths) {
          due.delete(path)
          due.set(path, now)
        }
        if (scheduled || paths.length === 0) return Effect.void
        scheduled = true
        return Queue.offer(wake, undefined)
      })
    const recheck: Recheck = {
      add: (path) => addAll([path]),
      writing: (paths) => (effect) =>
        Effect.acquireUseRelease(
          Effect.sync(() => paths.forEach((p) => inWrite.set(p, (inWrite.get(p) ?? 0) + 1))),
          () => effect,
          () =>
            Effect.suspend(() => {
              for (const p of paths) {
                const writers = inWrite.get(p)! - 1
                if (writers === 0) inWrite.delete(p)
                else inWrite.set(p, writers)
              }
              return addAll(paths)
            })
        ),
      pending: (path) => due.has(path) || inWrite.has(path)
    }
    return recheck
  })
