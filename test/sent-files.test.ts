import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Layer, Scope, Stream } from "effect"
import { makeSentFiles } from "../src/programs/SentFiles.js"
import { Events, type NodeEvent } from "../src/services/Events.js"

/** Events that are only kept, in order. */
const keptEvents = () => {
  const kept: Array<NodeEvent> = []
  const layer = Layer.succeed(Events, {
    publish: (e) => Effect.sync(() => void kept.push(e)),
    stream: Stream.empty,
    subscribe: Effect.succeed(Stream.empty)
  })
  const sent = () => kept.flatMap((e) => (e._tag === "FileSent" ? [{ path: e.path, bytes: e.bytes }] : []))
  return { layer, sent }
}

describe("sent files: one report per file a peer downloads", () => {
  it.live("overlapping and back-to-back requests for a file make one FileSent with all their bytes, once quiet", () => {
    const { layer, sent } = keptEvents()
    return Effect.gen(function*() {
      const tally = yield* makeSentFiles("peer")
      yield* tally.begin("big.bin")
      yield* tally.begin("big.bin")
      yield* tally.end("big.bin", 100)
      yield* tally.begin("big.bin") // the next chunk, asked as one ends
      yield* tally.end("big.bin", 100)
      yield* tally.begin("other.bin")
      yield* tally.end("other.bin", 7)
      yield* Effect.sleep("100 millis")
      yield* tally.end("big.bin", 50)
      expect(sent()).toEqual([])
      yield* Effect.sleep("700 millis")
      expect(sent()).toEqual([{ path: "other.bin", bytes: 7 }, { path: "big.bin", bytes: 250 }])
    }).pipe(Effect.scoped, Effect.provide(layer))
  })

  it.live("a request that sent nothing reports nothing; what is counted when the session ends is reported then", () => {
    const { layer, sent } = keptEvents()
    return Effect.gen(function*() {
      const scope = yield* Scope.make()
      const tally = yield* Scope.extend(makeSentFiles("peer"), scope)
      yield* tally.begin("gone.bin")
      yield* tally.end("gone.bin", 0)
      yield* tally.begin("big.bin")
      yield* tally.end("big.bin", 42)
      yield* Scope.close(scope, Exit.void)
      expect(sent()).toEqual([{ path: "big.bin", bytes: 42 }])
      yield* Effect.sleep("700 millis")
      expect(sent()).toEqual([{ path: "big.bin", bytes: 42 }])
    }).pipe(Effect.provide(layer))
  })
})
