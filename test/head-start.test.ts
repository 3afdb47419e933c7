import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Layer, Stream } from "effect"
import * as fs from "node:fs"
import { blockSizeFor } from "../src/domain/FileRecord.js"
import * as path from "node:path"
import { type Frame, IndexBatch, StreamEnd, Upcoming as UpcomingMessage } from "../src/domain/Messages.js"
import * as EventsPubSub from "../src/layers/EventsPubSub.js"
import * as FolderLocal from "../src/layers/FolderLocal.js"
import * as HasherBlake3 from "../src/layers/HasherBlake3.js"
import * as IndexSqlite from "../src/layers/IndexSqlite.js"
import * as TransferBlocks from "../src/layers/TransferBlocks.js"
import * as UpcomingPubSub from "../src/layers/UpcomingPubSub.js"
import { decodeFrame, encodeBlockData, encodeMessage } from "../src/lib/Wire.js"
import { ANNOUNCE_MIN_SIZE, scanAll } from "../src/programs/Scanner.js"
import type { NodeEvent } from "../src/services/Events.js"
import type { Channel } from "../src/services/SecureChannel.js"
import { Hasher } from "../src/services/Hasher.js"
import { Transfer } from "../src/services/Transfer.js"
import { Upcoming } from "../src/services/Upcoming.js"
import { makeNetwork } from "../src/Testing.js"
import { eventually, partFilesIn, readOr, tempDir } from "./support/fs.js"
import { fileRecord, hostileClient } from "./support/hostile.js"
import { captureLogs, memoryNode } from "./support/nodes.js"

const BLOCK = 131072
const content = Buffer.from(Buffer.alloc(5 * BLOCK + 1000).map((_, i) => (i * 7 + (i >> 9)) & 0xff))
const TOKEN = "ab".repeat(32)

/** The node's next file request, answered as `serve` says: the bytes of each block, or undefined to leave it out. */
const answerRequest = (channel: Channel, serve: (block: number) => Buffer | undefined) =>
  Effect.gen(function*() {
    while (true) {
      const frame: Frame = yield* Effect.flatMap(channel.receive, decodeFrame)
      if (frame._tag !== "FileRequest") continue
      for (const block of frame.blocks) {
        const bytes = serve(block)
        if (bytes) yield* channel.send(encodeBlockData(frame.stream, block, false, bytes))
      }
      yield* channel.send(encodeMessage(new StreamEnd({ stream: frame.stream })))
      return frame
    }
  }).pipe(Effect.timeout("5 seconds"))

const blockOf = (i: number) => content.subarray(i * BLOCK, (i + 1) * BLOCK)

describe("a head start (blocks fetched while the sender still hashes the file)", () => {
  it.live("fetches an announced file at once, and its record then costs only the blocks that came wrong", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const a = yield* tempDir()
      const network = makeNetwork()
      const node = yield* memoryNode(network, "a", a, [])
      const started: Array<NodeEvent> = []
      yield* Effect.forkScoped(Stream.runForEach(node.events, (e) => Effect.sync(() => e._tag === "TransferStarted" && started.push(e))))
      const { channel, hasher } = yield* hostileClient(network)
      yield* channel.send(encodeMessage(new UpcomingMessage({ token: TOKEN, path: "big.bin", size: content.length, first: hasher.hash(blockOf(0)) })))
      const early = yield* answerRequest(channel, (i) => (i === 2 ? Buffer.alloc(BLOCK, 9) : blockOf(i)))
      expect(early.hash).toBe(TOKEN)
      expect(early.blocks).toEqual([0, 1, 2, 3, 4, 5])
      // shown as a transfer from its start (the progress view has something to show)
      yield* eventually("the transfer reported", () => started.length === 1)
      expect(started[0]).toMatchObject({ path: "big.bin", bytes: content.length, fetchBytes: content.length })
      // the part file holds them, the target does not exist yet: nothing is in place before its record
      expect(fs.existsSync(path.join(a, "big.bin"))).toBe(false)
      const record = fileRecord("big.bin", content, hasher)
      yield* channel.send(encodeMessage(new IndexBatch({ records: [record], initialDone: true })))
      const late = yield* answerRequest(channel, blockOf)
      expect(late.hash).toBe(record.hash)
      expect(late.blocks).toEqual([2]) // the one that did not hash as the record says
      yield* eventually("the file in place", () => fs.existsSync(path.join(a, "big.bin")))
      expect(fs.readFileSync(path.join(a, "big.bin")).equals(content)).toBe(true)
      expect(partFilesIn(a)).toEqual([])
    }).pipe(Effect.scoped, Effect.provide(logs.layer), logs.level)
  }, { timeout: 30_000 })

  it.live("cut short (the peer stopped sending), keeps the blocks that came and fetches the rest with the record", () =>
    Effect.gen(function*() {
      const a = yield* tempDir()
      const network = makeNetwork()
      yield* memoryNode(network, "a", a, [])
      const { channel, hasher } = yield* hostileClient(network)
      yield* channel.send(encodeMessage(new UpcomingMessage({ token: TOKEN, path: "big.bin", size: content.length, first: hasher.hash(blockOf(0)) })))
      // blocks 0 and 3 only: the part file is shorter than the file, with a hole
      yield* answerRequest(channel, (i) => (i === 0 || i === 3 ? blockOf(i) : undefined))
      const record = fileRecord("big.bin", content, hasher)
      yield* channel.send(encodeMessage(new IndexBatch({ records: [record], initialDone: true })))
      const late = yield* answerRequest(channel, blockOf)
      expect(late.blocks).toEqual([1, 2, 4, 5])
      yield* eventually("the file in place", () => fs.existsSync(path.join(a, "big.bin")))
      expect(fs.readFileSync(path.join(a, "big.bin")).equals(content)).toBe(true)
      expect(partFilesIn(a)).toEqual([])
    }).pipe(Effect.scoped), { timeout: 30_000 })

  it.live("is not taken where a file or nothing is, for a copy of a file we have, outside the folder, or twice at once; its part file goes with the node", () =>
    Effect.gen(function*() {
      const parent = yield* tempDir()
      const a = path.join(parent, "folder")
      fs.mkdirSync(a)
      fs.writeFileSync(path.join(a, "mine.bin"), "keep")
      fs.writeFileSync(path.join(a, "copied.bin"), content)
      const network = makeNetwork()
      const requests: Array<Frame> = []
      yield* Effect.gen(function*() {
        yield* memoryNode(network, "a", a, [])
        const { channel, hasher } = yield* hostileClient(network)
        const announce = (p: string, first = "cd".repeat(32)) =>
          channel.send(encodeMessage(new UpcomingMessage({ token: TOKEN, path: p, size: content.length, first })))
        // a file of ours (not indexed yet or indexed), a folder that does not exist, a path outside
        for (const p of ["mine.bin", "no/such/folder/x.bin", "../escape.bin", ".dsync/index.db"]) yield* announce(p)
        // a copy (or a rename) of a file we have: its record will say what to copy here
        yield* announce("copy.bin", hasher.hash(blockOf(0)))
        yield* announce("first.bin")
        yield* announce("second.bin") // one at a time
        const listen = Effect.flatMap(channel.receive, decodeFrame).pipe(
          Effect.tap((frame) => Effect.sync(() => frame._tag === "FileRequest" && requests.push(frame))),
          Effect.forever
        )
        yield* listen.pipe(Effect.timeout("1500 millis"), Effect.ignore)
        expect(requests.map((r) => r._tag === "FileRequest" && r.path)).toEqual(["first.bin"])
        expect(fs.existsSync(path.join(a, "no"))).toBe(false)
        expect(fs.existsSync(path.join(parent, "escape.bin"))).toBe(false)
        expect(readOr(path.join(a, "mine.bin"))).toBe("keep")
        expect(partFilesIn(a)).toEqual([expect.stringMatching(/^\.dsync\/parts\//)]) // first.bin's, waiting for blocks
      }).pipe(Effect.scoped)
      // the node stopped, no record came: the part file is gone
      expect(partFilesIn(a)).toEqual([])
    }).pipe(Effect.scoped), { timeout: 30_000 })

  it.live("a new large file is announced while it is hashed, and served by its token only then", () =>
    Effect.gen(function*() {
      const root = yield* tempDir()
      const big = Buffer.alloc(ANNOUNCE_MIN_SIZE + 5, 1)
      fs.writeFileSync(path.join(root, "big.bin"), big)
      fs.writeFileSync(path.join(root, "small.bin"), "small")
      const services = TransferBlocks.layer.pipe(Layer.provideMerge(Layer.mergeAll(
        IndexSqlite.layer(root), FolderLocal.layer(root, []), HasherBlake3.layer, EventsPubSub.layer, UpcomingPubSub.layer
      )))
      yield* Effect.gen(function*() {
        const upcoming = yield* Upcoming
        const transfer = yield* Transfer
        const announced = yield* upcoming.subscribe
        yield* scanAll
        const [file] = Chunk.toReadonlyArray(yield* Stream.runCollect(Stream.take(announced, 1)))
        expect(file).toMatchObject({ path: "big.bin", size: big.length, first: (yield* Hasher).hash(big.subarray(0, blockSizeFor(big.length))) })
        expect(upcoming.find(file!.token, "big.bin")).toBeUndefined() // hashed: the token stands for nothing now
        const into = (_: number, size: number) => new Uint8Array(size)
        const serve = (blocks: Array<number>) => transfer.serve({ path: "big.bin", hash: file!.token, blocks }, into).pipe(Stream.runCollect)
        expect((yield* Effect.flip(serve([0]))).reason).toMatch(/no such file version/)
        // while announced, the file's blocks are served by the token
        const served = yield* upcoming.announcing({ path: "small.bin", size: 5, first: "00".repeat(32) })(
          Effect.gen(function*() {
            const [again] = Chunk.toReadonlyArray(yield* Stream.runCollect(Stream.take(announced, 1)))
            return yield* transfer.serve({ path: "small.bin", hash: again!.token, blocks: [0] }, into).pipe(Stream.runCollect)
          })
        )
        expect(Buffer.from(Chunk.unsafeGet(served, 0).data).toString()).toBe("small")
      }).pipe(Effect.provide(services))
    }).pipe(Effect.scoped), { timeout: 30_000 })
})
