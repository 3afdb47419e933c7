import { describe, expect, it } from "@effect/vitest"
import { Effect, type Fiber, Option } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import type { FileRecord } from "../src/domain/FileRecord.js"
import { FilesRequest, type Frame, IndexBatch, StreamEnd } from "../src/domain/Messages.js"
import { decodeFrame, encodeBlockData, encodeMessage } from "../src/lib/Wire.js"
import { makeEchoes, sentBy } from "../src/programs/Echoes.js"
import { makeNetwork } from "../src/Testing.js"
import { eventually, tempDir } from "./support/fs.js"
import { askedFiles, fileRecord, hostileClient } from "./support/hostile.js"
import { memoryNode, write } from "./support/nodes.js"

const record = (path: string, version: Record<string, number>, hash = "h".repeat(64), deleted = false): FileRecord => ({
  path, kind: "file", size: 1, mtimeMs: 1, mode: 0o644, hash, blockSize: 131072, blocks: [hash], version, deleted, sequence: 1
})
const A = "a".repeat(16)
const B = "b".repeat(16)
/** The session (with one peer) in question, and another one. */
const SESSION = "c".repeat(16)
const OTHER_SESSION = "d".repeat(16)

describe("echoes (a peer's records not sent back to it)", () => {
  it("holds back exactly what the peer sent, once, and nothing else", () => {
    const echoes = makeEchoes(100, SESSION)
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
    const echoes = makeEchoes(3, SESSION)
    for (const p of ["1", "2", "3", "4"]) echoes.heard(record(p, { [A]: 1 }))
    expect(echoes.isEcho(record("1", { [A]: 1 }))).toBe(false)
    expect(["2", "3", "4"].map((p) => echoes.isEcho(record(p, { [A]: 1 })))).toEqual([true, true, true])
  })

  it("holds back a record put in place from the session's peer while its version is the one the peer sent, remembered or not", () => {
    const echoes = makeEchoes(1, SESSION)
    const applied = { ...record("f", { [A]: 2 }), sentBy: { session: SESSION, version: { [A]: 2 } } }
    expect(echoes.isEcho(applied)).toBe(true)
    expect(echoes.isEcho(applied)).toBe(true) // kept in the index, not forgotten
    expect(sentBy({ ...applied, version: { [A]: 2, [B]: 1 } }, SESSION)).toBe(false) // edited here since
    expect(echoes.isEcho({ ...applied, version: { [A]: 3 } })).toBe(false) // a newer version from elsewhere
    // another session's: another peer, or the same one again (it may come back with an index restored from a copy)
    expect(echoes.isEcho({ ...applied, sentBy: { session: OTHER_SESSION, version: { [A]: 2 } } })).toBe(false)
    expect(sentBy({ ...applied, version: { [A]: 2 } }, SESSION)).toBe(true) // the same vector in any key order
  })
})

/** A node "a" in a new folder, a peer that announces five small files to it, and what the node sends back. */
const nodeGivenFiles = (prepare: (folder: string) => void) =>
  Effect.gen(function*() {
    const a = yield* tempDir()
    prepare(a)
    const network = makeNetwork()
    yield* memoryNode(network, "a", a, [])
    const { channel, hasher } = yield* hostileClient(network)
    const contents = new Map([...Array(5).keys()].map((i) => [`f${i}.txt`, Buffer.from(`file ${i}`)]))
    yield* channel.send(encodeMessage(new IndexBatch({
      records: [...contents].map(([p, bytes], i) => fileRecord(p, bytes, hasher, { sequence: i + 1 })),
      initialDone: false
    })))
    const echoed: Array<string> = []
    /** Note the paths of the index records in `frame`; answer a request for the files with their blocks. */
    const handle = (frame: Frame) =>
      Effect.gen(function*() {
        if (frame._tag === "IndexBatch") echoed.push(...frame.records.map((r) => (r as FileRecord).path))
        const asked = askedFiles(frame)
        for (const file of asked) {
          for (const { index } of file.blocks) yield* channel.send(encodeBlockData(file.stream, index, false, contents.get(file.path)!))
        }
        if (asked.length > 0) yield* channel.send(encodeMessage(new StreamEnd({ stream: asked[0]!.stream })))
      })
    /** Once the files are in place, a change of the node's own goes out, and none of the five came back. */
    const expectNoneBack = (listening: Fiber.RuntimeFiber<never, unknown>) =>
      Effect.gen(function*() {
        yield* eventually("the files applied", () => [...contents.keys()].every((p) => fs.existsSync(path.join(a, p))))
        write(a, "mine.txt", "a change of its own")
        yield* eventually("its own change sent", () => echoed.includes("mine.txt"))
        yield* Effect.sleep("1 second") // the recheck of the written paths has run
        expect(echoed.filter((p) => contents.has(p))).toEqual([])
        expect(Option.isNone(yield* listening.poll)).toBe(true)
      })
    return { channel, hasher, handle, expectNoneBack, network, contents }
  })

describe("a node that applied a peer's records", () => {
  it.live("does not send them back to that peer, and still sends its own changes", () =>
    Effect.gen(function*() {
      const { channel, handle, expectNoneBack } = yield* nodeGivenFiles(() => {})
      yield* channel.send(encodeMessage(new IndexBatch({ records: [], initialDone: true })))
      const listening = yield* Effect.fork(Effect.forever(Effect.flatMap(Effect.flatMap(channel.receive, decodeFrame), handle)))
      yield* expectNoneBack(listening)
    }).pipe(Effect.scoped), { timeout: 30_000 })

  it.live("sends them to that peer in a later session (it may come back with its index restored from a copy)", () =>
    Effect.gen(function*() {
      const { channel, handle, expectNoneBack, network, contents } = yield* nodeGivenFiles(() => {})
      yield* channel.send(encodeMessage(new IndexBatch({ records: [], initialDone: true })))
      yield* expectNoneBack(yield* Effect.fork(Effect.forever(Effect.flatMap(Effect.flatMap(channel.receive, decodeFrame), handle))))
      yield* channel.close
      // the same replica again, asking for everything (hostileClient asks from 0)
      const again = yield* hostileClient(network)
      const sent: Array<string> = []
      yield* Effect.fork(Effect.forever(Effect.flatMap(again.channel.receive, decodeFrame).pipe(
        Effect.map((frame) => frame._tag === "IndexBatch" && sent.push(...frame.records.map((r) => (r as FileRecord).path)))
      )))
      yield* eventually("the five sent in the new session", () => [...contents.keys()].every((p) => sent.includes(p)))
    }).pipe(Effect.scoped), { timeout: 30_000 })

  it.live("does not send them back however many records the peer sent after them (a large folder)", () =>
    Effect.gen(function*() {
      const { channel, hasher, handle, expectNoneBack } = yield* nodeGivenFiles((a) => write(a, ".dsyncignore", "flood-*\n"))
      // then more records than a session remembers of what its peer sent (10,000), all
      // taken in and left alone (ignored here): the five files are long forgotten there
      // by the time they are in place
      const flood = Array.from({ length: 10_500 }, (_, i) => fileRecord(`flood-${i}.txt`, "", hasher, { sequence: 6 + i }))
      for (let at = 0; at < flood.length; at += 1000) {
        yield* channel.send(encodeMessage(new IndexBatch({ records: flood.slice(at, at + 1000), initialDone: at + 1000 >= flood.length })))
      }
      // a request after them: its answer comes once the node has read (and taken in) all before it
      const MARK = 999
      yield* channel.send(encodeMessage(new FilesRequest({ stream: MARK, files: [{ path: "not-here.txt", hash: "0".repeat(64) }] })))
      let floodTaken = false
      const held: Array<Frame> = []
      const listen = Effect.gen(function*() {
        while (true) {
          const frame = yield* Effect.flatMap(channel.receive, decodeFrame)
          if (frame._tag === "StreamEnd" && frame.stream === MARK) floodTaken = true
          // the files are sent only once the node has taken in the whole flood
          if (askedFiles(frame).length > 0) held.push(frame)
          else yield* handle(frame)
          if (floodTaken) for (const request of held.splice(0)) yield* handle(request)
        }
      })
      yield* expectNoneBack(yield* Effect.fork(listen))
    }).pipe(Effect.scoped), { timeout: 60_000 })
})
