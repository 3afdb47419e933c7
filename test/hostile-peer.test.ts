import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { FileRequest, IndexBatch } from "../src/domain/Messages.js"
import { decodeFrame, encodeBlockData, encodeMessage } from "../src/lib/Wire.js"
import type { HasherApi } from "../src/services/Hasher.js"
import { makeNetwork } from "../src/Testing.js"
import { eventually, partFilesIn, readOr, tempDir } from "./support/fs.js"
import { askedFiles, fileRecord, hostileClient } from "./support/hostile.js"
import { captureLogs, memoryNode, write } from "./support/nodes.js"

const record = (p: string, content: string, hasher: HasherApi) => fileRecord(p, content, hasher, { blockSize: 131072 })

describe("a hostile peer", () => {
  it.live("cannot write outside the folder, cannot plant unverified bytes, and a malformed message only closes its connection", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const parent = yield* tempDir()
      const a = path.join(parent, "folder")
      fs.mkdirSync(a)
      write(a, "keep.txt", "untouched")
      const network = makeNetwork()
      yield* memoryNode(network, "a", a, [])
      const { channel, hasher } = yield* hostileClient(network)

      const unsafe = ["../escape.txt", "/abs.txt", "x/../../escape2.txt", "nul\u0000.txt", ".dsync/index.db", "back\\slash.txt"]
      yield* channel.send(encodeMessage(new IndexBatch({
        records: [...unsafe.map((p) => record(p, "pwned", hasher)), record("bad.txt", "hello", hasher)],
        initialDone: true
      })))
      // answer the file request with bytes that don't match the announced hash
      const answered = yield* Effect.gen(function*() {
        while (true) {
          const frame = yield* Effect.flatMap(channel.receive, decodeFrame)
          const [asked] = askedFiles(frame)
          if (asked) {
            yield* channel.send(encodeBlockData(asked.stream, asked.blocks[0]!.index, false, Buffer.from("HELLO")))
            return asked.path
          }
        }
      }).pipe(Effect.timeout("5 seconds"))
      expect(answered).toBe("bad.txt")
      yield* eventually("refusals logged", () =>
        unsafe.every((p) => logs.lines.some((l) => l.includes("refused record") && l.includes(JSON.stringify(p).slice(1, -1)))) &&
        logs.lines.some((l) => l.includes("could not apply bad.txt")))
      expect(fs.existsSync(path.join(parent, "escape.txt"))).toBe(false)
      expect(fs.existsSync(path.join(parent, "escape2.txt"))).toBe(false)
      expect(fs.existsSync(path.join(a, "bad.txt"))).toBe(false)
      expect(partFilesIn(a)).toEqual([])

      // garbage inside the encrypted channel: the node drops this connection and says why
      yield* channel.send(new Uint8Array([0, ...Buffer.from("{not json")]))
      yield* eventually("connection closed with a reason", () => logs.lines.some((l) => l.includes("not valid JSON")))
      // ...and keeps serving everyone else
      const b = yield* tempDir()
      yield* memoryNode(network, "b", b, ["a"])
      yield* eventually("an honest peer still syncs", () => readOr(path.join(b, "keep.txt")) === "untouched")
      expect(readOr(path.join(a, "keep.txt"))).toBe("untouched")
    }).pipe(Effect.scoped, Effect.provide(logs.layer), logs.level)
  }, { timeout: 30_000 })

  it.live("a file stream below the floor rate is cancelled (the session goes on); a silent peer is disconnected", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const a = yield* tempDir()
      const network = makeNetwork()
      yield* memoryNode(network, "a", a, [], { slowStreamWindow: "300 millis", idleTimeout: "1 second", keepalive: "10 seconds" })
      const { channel, hasher } = yield* hostileClient(network)
      yield* channel.send(encodeMessage(new IndexBatch({ records: [record("wanted.txt", "hello", hasher)], initialDone: true })))
      yield* eventually("stalled stream cancelled", () => logs.lines.some((l) => l.includes("the peer sent too slowly")))
      expect(fs.existsSync(path.join(a, "wanted.txt"))).toBe(false)
      expect(partFilesIn(a)).toEqual([])
      // a second hostile peer that says nothing after its hello is dropped as idle
      yield* hostileClient(network)
      yield* eventually("idle peer dropped", () => logs.lines.some((l) => l.includes("idle timeout")), 5_000)
    }).pipe(Effect.scoped, Effect.provide(logs.layer), logs.level)
  }, { timeout: 30_000 })

  it.live("one that floods file requests is disconnected, not served without bound", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const a = yield* tempDir()
      write(a, "big.bin", "x".repeat(1000))
      const network = makeNetwork()
      yield* memoryNode(network, "a", a, [])
      const { channel } = yield* hostileClient(network)
      // requests for a file version the node does not have: each is answered at once, but
      // this peer never reads, so the answers back up and the requests stay open
      for (let stream = 1; stream <= 400; stream++) {
        yield* channel.send(encodeMessage(new FileRequest({ stream, path: "big.bin", hash: "0".repeat(64), blocks: [0] }))).pipe(
          Effect.timeout("1 second"),
          Effect.ignore
        )
      }
      yield* eventually("flood refused", () => logs.lines.some((l) => l.includes("file requests open at once")))
    }).pipe(Effect.scoped, Effect.provide(logs.layer), logs.level)
  }, { timeout: 30_000 })
})
