import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import { shortId } from "../services/Identity.js"
import type { Channel } from "../services/SecureChannel.js"

interface Entry {
  /** Peer id of whoever dialled this connection. */
  readonly initiator: string
  readonly stop: Deferred.Deferred<void>
  readonly ended: Deferred.Deferred<void>
}

/** How `run` ended: the session ran and is over, or the connection was a duplicate and was closed at once. */
export type SessionOutcome = "ended" | "duplicate"

/**
 * One session per peer. When two connections to the same peer exist (both sides dialled),
 * both ends keep the one dialled by the smaller peer id, so they agree without talking.
 */
export const makeSessions = Effect.sync(() => {
  const live = new Map<string, Entry>()

  const run = <E, R>(channel: Channel, initiator: string, session: Effect.Effect<void, E, R>) =>
    Effect.gen(function*() {
      const existing = live.get(channel.peerId)
      if (existing && existing.initiator < initiator) {
        yield* Effect.logDebug(`dropping duplicate connection to ${shortId(channel.peerId)}`)
        yield* channel.close
        return "duplicate" as SessionOutcome
      }
      if (existing) yield* Deferred.succeed(existing.stop, undefined)
      const entry: Entry = { initiator, stop: yield* Deferred.make<void>(), ended: yield* Deferred.make<void>() }
      live.set(channel.peerId, entry)
      // The session runs in a fiber that is interrupted and awaited (stop, or our own
      // interruption) before the channel closes: its goodbye still gets out.
      return yield* Effect.gen(function*() {
        // (its failure comes back as a value: a failed fiber would also be logged as unhandled)
        const running = yield* Effect.forkScoped(Effect.exit(session))
        yield* Effect.forkScoped(Effect.zipRight(Deferred.await(entry.stop), Fiber.interrupt(running)))
        const exit = Exit.flatten(yield* Fiber.await(running))
        // stopped for a newer connection: an end like any other
        if (Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause)) return "ended" as SessionOutcome
        return yield* Effect.as(exit, "ended" as SessionOutcome)
      }).pipe(
        Effect.scoped,
        Effect.ensuring(Effect.suspend(() => {
          if (live.get(channel.peerId) === entry) live.delete(channel.peerId)
          return Effect.zipRight(channel.close, Deferred.succeed(entry.ended, undefined))
        }))
      )
    })

  /** Wait until the current session with `peerId` (if any) ends. */
  const awaitEnd = (peerId: string) => {
    const entry = live.get(peerId)
    return entry ? Deferred.await(entry.ended) : Effect.void
  }

  return { run, awaitEnd, peers: () => [...live.keys()] }
})

/** The node's session table, from makeSessions. */
export type Sessions = Effect.Effect.Success<typeof makeSessions>
