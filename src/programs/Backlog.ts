import * as Effect from "effect/Effect"
import { Events, NodeEvent } from "../services/Events.js"

/** Backlog events at most this often (and always when it empties). */
const INTERVAL_MS = 200

/**
 * What all sessions still have to pull, in files and bytes: each puller adds what it
 * takes on and removes what it is done with; the totals go out as Backlog events.
 */
export interface Backlog {
  readonly adjust: (files: number, bytes: number) => Effect.Effect<void>
}

/** The node's Backlog: totals published at most every INTERVAL_MS, and always when they reach zero. */
export const makeBacklog = Effect.gen(function*() {
  const events = yield* Events
  let files = 0
  let bytes = 0
  let lastSent = 0
  const backlog: Backlog = {
    adjust: (df, db) =>
      Effect.suspend(() => {
        files += df
        bytes += db
        const now = Date.now()
        if (files !== 0 && now - lastSent < INTERVAL_MS) return Effect.void
        lastSent = now
        return events.publish(NodeEvent.Backlog({ files, bytes }))
      })
  }
  return backlog
})
