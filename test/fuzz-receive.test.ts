// Property-style fuzzing of the receive path: a seeded generator sends a running node
// index batches of valid, mutated and hostile records, and answers its file requests
// with good, bad, short, misnumbered and missing blocks. Whatever it sends, nothing is
// written outside the folder, no defect escapes, no part file is left, memory stays
// bounded, and the node still syncs with an honest peer afterwards.
// More seeds: `npm run fuzz` (DSYNC_FUZZ_SEEDS=50); one seed again: DSYNC_FUZZ_SEED=17.
import { describe, expect, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { blockSizeFor } from "../src/domain/FileRecord.js"
import { IndexBatch, StreamEnd } from "../src/domain/Messages.js"
import { decodeFrame, encodeBlockData, encodeMessage } from "../src/lib/Wire.js"
import type { HasherApi } from "../src/services/Hasher.js"
import { makeNetwork } from "../src/Testing.js"
import { eventually, folderWithOutside, partFilesIn, readOr, tempDir } from "./support/fs.js"
import { askedFiles, EVIL_REPLICA, fileRecord, hostileClient, symlinkRecord } from "./support/hostile.js"
import { captureLogs, memoryNode, write } from "./support/nodes.js"
import { type Rng, rng } from "./support/rng.js"


const SEGMENTS = ["a", "b", "d", "..", ".", "", ".dsync", "x.txt", "link", "über", "a\u202eb", "c\u0000", "\\", "C:", "deep"]

const randomPath = (r: Rng, outside: string) => {
  if (r.int(10) === 0) return r.pick([outside + "/evil", "/etc/passwd", "../escape", "a/../../escape", ""])
  return Array.from({ length: 1 + r.int(4) }, () => r.pick(SEGMENTS)).join("/")
}

/** A record, valid or not: a real one of some content, then a few fields bent. */
const randomRecord = (r: Rng, hasher: HasherApi, outside: string, contents: Map<string, Buffer>): unknown => {
  const p = randomPath(r, outside)
  const content = Buffer.alloc(r.pick([0, 1, 100, 140_000, 300_000]), r.int(256))
  let record: Record<string, unknown> = r.int(4) === 0
    ? { ...symlinkRecord(p, r.pick([outside, "../..", "/etc", "x"]), hasher) }
    : { ...fileRecord(p, content, hasher) }
  if (record.kind === "file") contents.set(p, content)
  if (r.int(8) === 0) record = { ...record, kind: "dir", size: 0, hash: "", blocks: [], blockSize: blockSizeFor(0) }
  if (r.int(8) === 0) record = { ...record, deleted: true, blocks: [], size: 0, hash: "" }
  const bends: Array<() => void> = [
    () => (record.mode = r.pick([0o4755, 0o7777, -1, 1e9, 0.5])),
    () => (record.size = r.pick([-1, 2 ** 53, 1e20, (record.size as number) + 1])),
    () => (record.blockSize = r.pick([1, 2 ** 24, 2 ** 31, 131_071])),
    () => (record.version = r.pick([{ [EVIL_REPLICA]: 2 ** 53 - 1 }, { [EVIL_REPLICA]: 0 }, { bad: 1 }, {}, null])),
    () => (record.mtimeMs = r.pick([Infinity, -1e20, 1e30, NaN])),
    () => (record.blocks = r.pick([[], ["zz"], Array(3000).fill("0".repeat(64))])),
    () => (record.path = 42),
    () => (record.target = "x".repeat(5000)),
    () => delete record.hash,
    () => (record.extra = "field")
  ]
  for (let i = r.int(3); i > 0; i--) r.pick(bends)()
  return record
}

/** Answer file requests, badly on purpose, for a bounded while. */
const answerBadly = (r: Rng, channel: { send: (b: Uint8Array) => Effect.Effect<void, unknown>; receive: Effect.Effect<Uint8Array, unknown> }, contents: ReadonlyMap<string, Buffer>) =>
  Effect.gen(function*() {
    for (let i = 0; i < 2_000; i++) {
      const frame = yield* Effect.flatMap(channel.receive, decodeFrame).pipe(Effect.timeout("1500 millis"), Effect.option)
      if (Option.isNone(frame)) return
      const asked = askedFiles(frame.value)
      if (asked.length === 0) continue
      const stream = asked[0]!.stream
      const behaviour = r.int(7)
      if (behaviour === 6) continue // never answer: the floor rate cancels it
      for (const file of asked) {
        const bytes = contents.get(file.path) ?? Buffer.alloc(10)
        const size = blockSizeFor(bytes.length)
        for (const { block, index } of file.blocks) {
          const good = bytes.subarray(block * size, (block + 1) * size)
          const data = behaviour === 1 ? Buffer.from(good).fill(1) : behaviour === 2 ? good.subarray(0, Math.max(0, good.length - 1)) : good
          const at = behaviour === 3 ? index + 1 : index
          yield* channel.send(encodeBlockData(stream, at, behaviour === 4, behaviour === 4 ? Buffer.from([0xff, 0x00, 0x13]) : data))
        }
      }
      if (behaviour === 5) yield* channel.send(encodeBlockData(stream, 4000, false, Buffer.from("extra")))
      yield* channel.send(encodeMessage(new StreamEnd({ stream })))
    }
  })

const SEEDS = process.env.DSYNC_FUZZ_SEED
  ? [Number(process.env.DSYNC_FUZZ_SEED)]
  : Array.from({ length: Number(process.env.DSYNC_FUZZ_SEEDS ?? 3) }, (_, i) => i + 1)

describe("fuzz: the receive path", () => {
  for (const seed of SEEDS) {
    it.live(`seed ${seed} (DSYNC_FUZZ_SEED=${seed}): hostile batches and streams write nothing outside, leak no defect, leave no part file`, () => {
      const logs = captureLogs()
      return Effect.gen(function*() {
        const { parent, root, outside, snapshot } = yield* folderWithOutside
        write(root, "mine.txt", "the user's file")
        const before = snapshot()
        const heapBefore = process.memoryUsage().heapUsed
        const network = makeNetwork()
        yield* memoryNode(network, "a", root, [], { slowStreamWindow: "300 millis" })
        const r = rng(seed)
        const { channel, hasher } = yield* hostileClient(network)
        const contents = new Map<string, Buffer>()
        for (let batch = 0; batch < 6; batch++) {
          const records = Array.from({ length: 50 }, () => randomRecord(r, hasher, outside, contents))
          const sent = yield* channel.send(encodeMessage(new IndexBatch({ records, initialDone: batch === 5 }))).pipe(Effect.either)
          if (sent._tag === "Left") break
        }
        yield* answerBadly(r, channel, contents).pipe(Effect.ignore)
        expect(snapshot()).toBe(before)
        expect(fs.readdirSync(parent).sort()).toEqual(["folder", "outside"])
        expect(readOr(path.join(root, "mine.txt"))).toBe("the user's file")
        yield* eventually("no part file left", () => partFilesIn(root).length === 0)
        const defects = logs.lines.filter((l) => /Fiber terminated|Die|TypeError|RangeError|is not a function|undefined is not/.test(l))
        expect(defects).toEqual([])
        // the run did reach the receive path: some records were refused, some files written
        expect(logs.lines.some((l) => l.includes("refused record"))).toBe(true)
        expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(300 * 1024 * 1024)
        // and the node still syncs with an honest peer
        const b = yield* tempDir()
        yield* memoryNode(network, "b", b, ["a"])
        yield* eventually("an honest peer still syncs", () => readOr(path.join(b, "mine.txt")) === "the user's file")
      }).pipe(Effect.scoped, Effect.provide(logs.layer), logs.level)
    }, { timeout: 60_000 })
  }
})

