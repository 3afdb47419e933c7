import * as Effect from "effect/Effect"

/** Longest stretch of synchronous work between two turns of the event loop. */
const TURN_MS = 10

let lastTurn = Date.now()

/**
 * Let the event loop turn (sockets, timers) if it has not for TURN_MS. `Effect.yieldNow`
 * only lets other fibers run, in microtasks: a long synchronous stretch (a scan hashing
 * thousands of files) would hold every socket meanwhile, a peer's handshake included.
 */
export const letEventLoopTurn: Effect.Effect<void> = Effect.suspend(() =>
  Date.now() - lastTurn < TURN_MS
    ? Effect.void
    : Effect.async<void>((resume) => {
      const immediate = setImmediate(() => {
        lastTurn = Date.now()
        resume(Effect.void)
      })
      return Effect.sync(() => clearImmediate(immediate))
    })
)
