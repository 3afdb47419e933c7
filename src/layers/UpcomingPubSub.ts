import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as PubSub from "effect/PubSub"
import * as Stream from "effect/Stream"
import { randomBytes } from "node:crypto"
import { Upcoming, type UpcomingFile } from "../services/Upcoming.js"

/** Announcements kept per session before the oldest are dropped (a peer then just waits for the record). */
const BUFFER = 64

/** Files being hashed, in a map while it lasts; their announcements on a sliding PubSub, shut with the scope. */
export const layer: Layer.Layer<Upcoming> = Layer.scoped(
  Upcoming,
  Effect.gen(function*() {
    const hub = yield* Effect.acquireRelease(PubSub.sliding<UpcomingFile>(BUFFER), PubSub.shutdown)
    const hashing = new Map<string, UpcomingFile>()
    return Upcoming.of({
      announcing: (file) => (effect) =>
        Effect.acquireUseRelease(
          Effect.suspend(() => {
            const upcoming = { ...file, token: randomBytes(32).toString("hex") }
            hashing.set(upcoming.token, upcoming)
            return Effect.as(PubSub.publish(hub, upcoming), upcoming)
          }),
          () => effect,
          (upcoming) => Effect.sync(() => hashing.delete(upcoming.token))
        ),
      find: (token, path) => {
        const file = hashing.get(token)
        return file?.path === path ? file : undefined
      },
      // subscribed before the current ones are read: one announced in between comes twice, never not at all
      subscribe: Effect.map(PubSub.subscribe(hub), (queue) =>
        Stream.concat(Stream.suspend(() => Stream.fromIterable([...hashing.values()])), Stream.fromQueue(queue)))
    })
  })
)
