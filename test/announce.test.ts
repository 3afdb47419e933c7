import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import type { FileRecord } from "../src/domain/FileRecord.js"
import { IndexBatch } from "../src/domain/Messages.js"
import { decodeFrame, encodeMessage } from "../src/lib/Wire.js"
import { makeNetwork } from "../src/Testing.js"
import { eventually, tempDir } from "./support/fs.js"
import { EVIL_REPLICA, fileRecord, hostileClient } from "./support/hostile.js"
import { memoryNode, write } from "./support/nodes.js"

describe("a peer's version that loses to ours (concurrent edits: keep)", () => {
  it.live("ours is announced to it again, after its own: a deletion that lost to our edit meets it again", () =>
    Effect.gen(function*() {
      const a = yield* tempDir()
      write(a, "f.txt", "ours, edited")
      const network = makeNetwork()
      yield* memoryNode(network, "a", a, [])
      const { channel, hasher } = yield* hostileClient(network)
      const sent: Array<FileRecord> = []
      yield* Effect.fork(Effect.forever(Effect.flatMap(Effect.flatMap(channel.receive, decodeFrame), (frame) =>
        Effect.sync(() => frame._tag === "IndexBatch" && sent.push(...(frame.records as Array<FileRecord>).filter((r) => r.path === "f.txt"))))))
      yield* eventually("f.txt announced", () => sent.length === 1)
      const ours = sent[0]!
      // the peer deleted its own version of f.txt meanwhile (it had seen ours only before
      // its edit): concurrent with ours, and an edit beats a delete
      const deletion = fileRecord("f.txt", "", hasher, { deleted: true, blocks: [], size: 0, mtimeMs: Date.now(), version: { [EVIL_REPLICA]: 1 } })
      yield* channel.send(encodeMessage(new IndexBatch({ records: [deletion], initialDone: true })))
      yield* eventually("f.txt announced again", () => sent.length === 2)
      expect([sent[1]!.version, sent[1]!.hash, sent[1]!.deleted]).toEqual([ours.version, ours.hash, false])
      expect(sent[1]!.sequence).toBeGreaterThan(ours.sequence)
      expect(fs.readFileSync(path.join(a, "f.txt"), "utf8")).toBe("ours, edited")
    }).pipe(Effect.scoped), { timeout: 30_000 })
})
