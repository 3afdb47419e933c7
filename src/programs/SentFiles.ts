import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { NodeEvent, publish } from "../services/Events.js"

/** A file no request has asked for in this long is done being sent. */
const QUIET = Duration.millis(500)

interface Sending {
  open: number
  bytes: number
  readonly started: number
  ended: number
  /** Which end scheduled the report: a request that comes and goes meanwhile makes the earlier one stale. */
  generation: number
}

/** What `makeSentFiles` gives a session. */
export type SentFiles = Effect.Effect.Success<ReturnType<typeof makeSentFiles>>

/**
 * One FileSent per file a peer downloads, however many requests it takes: a large file
 * is asked for in chunks (several at once, and some from other peers), and a line per
 * chunk would say nothing a user wants. A file's requests are counted until none has
 * been open for QUIET; then its bytes and time go out as one event. What is still
 * counted when the session ends goes out then.
 */
export const makeSentFiles = (peerId: string) =>
  Effect.gen(function*() {
    const sending = new Map<string, Sending>()
    const scope = yield* Effect.scope
    const report = (path: string, s: Sending) =>
      publish(NodeEvent.FileSent({ path, peerId, bytes: s.bytes, durationMs: s.ended - s.started }))
    yield* Effect.addFinalizer(() =>
      Effect.forEach([...sending].filter(([, s]) => s.bytes > 0), ([path, s]) => report(path, s), { discard: true })
    )
    return {
      /** A request for `path` is being served. */
      begin: (path: string) =>
        Effect.sync(() => {
          const s = sending.get(path)
          if (s) s.open++
          else sending.set(path, { open: 1, bytes: 0, started: Date.now(), ended: Date.now(), generation: 0 })
        }),
      /** It ended, having sent `bytes`. */
      end: (path: string, bytes: number) =>
        Effect.suspend(() => {
          const s = sending.get(path)
          if (!s) return Effect.void
          s.open--
          s.bytes += bytes
          s.ended = Date.now()
          if (s.open > 0) return Effect.void
          const generation = ++s.generation
          const settle = Effect.suspend(() => {
            if (s.open > 0 || s.generation !== generation || sending.get(path) !== s) return Effect.void
            sending.delete(path)
            return s.bytes > 0 ? report(path, s) : Effect.void
          })
          return Effect.asVoid(Effect.forkIn(Effect.delay(settle, QUIET), scope))
        })
    }
  })
