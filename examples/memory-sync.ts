/**
 * Two dsync nodes in one process, on an in-memory network: a file written in one
 * folder appears in the other. The network is in memory; folders, index and watcher
 * are real.
 *
 * Run by `npm test` (test/examples.test.ts); `program` is what an app would write.
 */
import { Console, Effect, Fiber, Layer, Stream } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { makeNetwork, memoryNodeLayer, SyncNode } from "../src/index.js"

/** One node on `network`, named `host`, syncing `root`, dialling `peers` (host names). */
const node = (network: ReturnType<typeof makeNetwork>, host: string, root: string, peers: ReadonlyArray<string>) =>
  SyncNode.layer({ name: host, listen: { host, port: 9000 } }).pipe(
    Layer.provide(memoryNodeLayer({ network, host, root, peers: peers.map((h) => ({ host: h, port: 9000 })) }))
  )

export const program = (a: string, b: string) =>
  Effect.gen(function*() {
    const network = makeNetwork()
    // node B first, so we can watch its events before A connects
    const nodeB = yield* Layer.build(node(network, "b", b, []))
    const received = yield* SyncNode.SyncNode.pipe(
      Effect.provide(nodeB),
      Effect.flatMap((n) =>
        n.events.pipe(
          Stream.filter((e) => e._tag === "FileReceived" && e.path === "hello.txt"),
          Stream.runHead,
          Effect.fork
        )
      )
    )
    yield* Effect.sleep("50 millis") // let the subscription start
    fs.writeFileSync(path.join(a, "hello.txt"), "hello from A")
    yield* Layer.build(node(network, "a", a, ["b"]))
    const event = yield* Fiber.join(received).pipe(Effect.timeout("20 seconds"))
    yield* Console.log(`B received ${JSON.stringify(event)}`)
    return fs.readFileSync(path.join(b, "hello.txt"), "utf8")
  }).pipe(Effect.scoped)
