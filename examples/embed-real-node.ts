/**
 * An Effect app that embeds a real dsync node (TCP on 127.0.0.1, no discovery) and
 * reacts to its events: it counts the files it receives and reports each peer. A
 * second real node in the same process plays the other machine.
 *
 * Run by `npm test` (test/examples.test.ts); `program` is what an app would write.
 */
import { Effect, Fiber, Layer, Ref, Schedule, Stream } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { nodeLayer, type NodeEvent, SyncNode, TransportTcp } from "../src/index.js"

/** A real node on 127.0.0.1 (any free port), dialling `peers`. */
const realNode = (root: string, peers: ReadonlyArray<{ host: string; port: number }>) =>
  SyncNode.layer({ name: path.basename(root), listen: { host: "127.0.0.1", port: 0 } }).pipe(
    Layer.provide(nodeLayer(TransportTcp.layer, { root, excludes: [], peers }))
  )

/** What the app does with the node's events: count files, note peers (and log them). */
const react = (events: Stream.Stream<NodeEvent>, received: Ref.Ref<ReadonlyArray<string>>) =>
  Stream.runForEach(events, (event) => {
    switch (event._tag) {
      case "PeerConnected":
        return Effect.logInfo(`app: peer ${event.name} joined`)
      case "FileReceived":
        return Ref.update(received, (paths) => [...paths, event.path])
      default:
        return Effect.void
    }
  })

export const program = (mine: string, theirs: string) =>
  Effect.gen(function*() {
    const node = yield* Layer.build(realNode(mine, []))
    const api = yield* Effect.provide(SyncNode.SyncNode, node)
    const received = yield* Ref.make<ReadonlyArray<string>>([])
    const reacting = yield* Effect.fork(react(api.events, received))
    yield* Effect.sleep("50 millis") // let the subscription start
    // the "other machine": a second real node with two files, dialling ours
    fs.writeFileSync(path.join(theirs, "one.txt"), "1")
    fs.writeFileSync(path.join(theirs, "two.txt"), "2")
    yield* Layer.build(realNode(theirs, [api.address]))
    yield* Ref.get(received).pipe(
      Effect.repeat({ until: (paths) => paths.length >= 2, schedule: Schedule.spaced("100 millis") }),
      Effect.timeout("20 seconds")
    )
    yield* Fiber.interrupt(reacting)
    return [...(yield* Ref.get(received))].sort()
  }).pipe(Effect.scoped)
