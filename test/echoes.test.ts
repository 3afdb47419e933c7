import { describe, expect, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import type { FileRecord } from "../src/domain/FileRecord.js"
import { IndexBatch, StreamEnd } from "../src/domain/Messages.js"
import { decodeFrame, encodeBlockData, encodeMessage } from "../src/lib/Wire.js"
import { makeEchoes } from "../src/programs/Echoes.js"
import { makeNetwork } from "../src/Testing.js"
import { eventually, tempDir } from "./support/fs.js"
import { askedFiles, fileRecord, hostileClient } from "./support/hostile.js"
import { memoryNode, write } from "./support/nodes.js"

const record = (path: string, version: Record<string, number>, hash = "h".repeat(64), deleted = false): FileRecord => ({
  path, kind: "file", size: 1, mtimeMs: 1, mode: 0o644, hash, blockSize: 131072, blocks: [hash], version, deleted, sequence: 1
})
const A = "a".repeat(16)
const B = "b".repeat(16)

describe("echoes (a peer's records not sent back to it)", () => {
  it("holds back exactly what the peer sent, once, and nothing else", () => {
    const echoes = makeEchoes(100)
    echoes.heard(record("f", { [A]: 2 }))
    expect(echoes.isEcho(record("f", { [A]: 2 }))).toBe(true)
    expect(echoes.isEcho(record("f", { [A]: 2 }))).toBe(false) // forgotten once checked
    echoes.heard(record("g", { [A]: 2 }))
    expect(echoes.isEcho(record("g", { [A]: 2, [B]: 1 }))).toBe(false) // merged with an edit of ours: news to the peer
    echoes.heard(record("h", { [A]: 2 }))
    expect(echoes.isEcho(record("h", { [A]: 2 }, "h".repeat(64), true))).toBe(false)
    echoes.heard(record("i", { [A]: 1 }))
    echoes.heard(record("i", { [A]: 3 })) // the latest the peer sent counts
    expect(echoes.isEcho(record("i", { [A]: 1 }))).toBe(false)
    expect(echoes.isEcho(record("never-sent", {}))).toBe(false)
  })

  it("remembers a bounded number of paths, forgetting the oldest first", () => {
    const echoes = makeEchoes(3)
    for (const p of ["1", "2", "3", "4"]) echoes.heard(record(p, { [A]: 1 }))
    expect(echoes.isEcho(record("1", { [A]: 1 }))).toBe(false)
    expect(["2", "3", "4"].map((p) => echoes.isEcho(record(p, { [A]: 1 })))).toEqual([true, true, true])
  })
})

describe("a node that applied a peer's records", () => {
  it.live("does not send them back to that peer, and still sends its own changes", () =>
    Effect.gen(function*() {
      const a = yield* tempDir()
      const network = makeNetwork()
      yield* memoryNode(network, "a", a, [])
      const { channel, hasher } = yield* hostileClient(network)
      const contents = new Map([...Array(5).keys()].map((i) => [`f${i}.txt`, Buffer.from(`file ${i}`)]))
      yield* channel.send(encodeMessage(new IndexBatch({
        records: [...contents].map(([p, bytes], i) => fileRecord(p, bytes, hasher, { sequence: i + 1 })),
        initialDone: true
      })))
      const echoed: Array<string> = []
      const listen = Effect.gen(function*() {
        while (true) {
          const frame = yield* Effect.flatMap(channel.receive, decodeFrame)
          if (frame._tag === "IndexBatch") echoed.push(...frame.records.map((r) => (r as FileRecord).path))
          for (const file of askedFiles(frame)) {
            for (const { index } of file.blocks) yield* channel.send(encodeBlockData(file.stream, index, false, contents.get(file.path)!))
          }
          if (askedFiles(frame).length > 0) yield* channel.send(encodeMessage(new StreamEnd({ stream: askedFiles(frame)[0]!.stream })))
        }
      })
      const listening = yield* Effect.fork(listen)
      yield* eventually("the files applied", () => [...contents.keys()].every((p) => fs.existsSync(path.join(a, p))))
      write(a, "mine.txt", "a change of its own")
      yield* eventually("its own change sent", () => echoed.includes("mine.txt"))
      yield* Effect.sleep("1 second") // the recheck of the written paths has run
      expect(echoed.filter((p) => contents.has(p))).toEqual([])
      expect(Option.isNone(yield* listening.poll)).toBe(true)
    }).pipe(Effect.scoped), { timeout: 30_000 })
})
