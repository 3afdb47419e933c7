import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as PubSub from "effect/PubSub"
import * as Stream from "effect/Stream"
import { Events, type NodeEvent } from "../services/Events.js"

/** Events kept per subscriber before the oldest are dropped (a slow reader never stalls sync). */
const BUFFER = 4096

/** An in-process event hub (a sliding PubSub), shut with its scope. */
export const layer: Layer.Layer<Events> = Layer.scoped(
  Events,
  Effect.gen(function*() {
    const hub = yield* Effect.acquireRelease(PubSub.sliding<NodeEvent>(BUFFER), PubSub.shutdown)
    return Events.of({
      publish: (e) => Effect.asVoid(PubSub.publish(hub, e)),
      stream: Stream.fromPubSub(hub),
      subscribe: Effect.map(PubSub.subscribe(hub), (queue) => Stream.fromQueue(queue))
    })
  })
)
