import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Stream } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import type { NodeEvent } from "../src/services/Events.js"
import { makeNetwork } from "../src/Testing.js"
import { eventually, readOr, tempDir } from "./support/fs.js"
import { memoryNode, write } from "./support/nodes.js"

describe("node events", () => {
  it.live("a node reports peers, files received with bytes and time, deletions, and its backlog", () =>
    Effect.gen(function*() {
      const a = yield* tempDir()
      const b = yield* tempDir()
      write(a, "hello.txt", "hello from a")
      const network = makeNetwork()
      const nodeB = yield* memoryNode(network, "b", b, [])
      const seen: Array<NodeEvent> = []
      const watching = yield* Effect.fork(Stream.runForEach(nodeB.events, (e) => Effect.sync(() => void seen.push(e))))
      yield* Effect.sleep("50 millis") // the subscription is taken when the stream starts
      const nodeA = yield* memoryNode(network, "a", a, ["b"])
      yield* eventually("file arrived", () => readOr(path.join(b, "hello.txt")) === "hello from a")
      fs.rmSync(path.join(a, "hello.txt"))
      yield* eventually("deletion reported", () => seen.some((e) => e._tag === "FileDeleted"))
      const tags = seen.map((e) => e._tag)
      expect(tags).toContain("PeerConnected")
      const connected = seen.find((e) => e._tag === "PeerConnected")
      expect(connected?._tag === "PeerConnected" && connected.peerId).toBe(nodeA.peerId)
      const received = seen.find((e) => e._tag === "FileReceived" && e.path === "hello.txt")
      expect(received?._tag === "FileReceived" && received.bytes).toBe(12)
      expect(received?._tag === "FileReceived" && received.durationMs).toBeGreaterThanOrEqual(0)
      expect(tags.indexOf("TransferStarted")).toBeLessThan(tags.indexOf("FileReceived"))
      const last = seen.filter((e) => e._tag === "Backlog").at(-1)
      expect(last?._tag === "Backlog" && last.files).toBe(0)
      yield* Fiber.interrupt(watching)
    }).pipe(Effect.scoped), { timeout: 30_000 })
})
