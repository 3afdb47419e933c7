// The index commits the puts of one scheduler turn together (IndexSqlite's write-behind).
// What must hold whatever the batching: every read sees every put; a sequence number is
// published only once its record is on disk (a peer is never sent a number a crash could
// take back); what is pending at close is committed.
import { describe, expect, it } from "@effect/vitest"
import Database from "better-sqlite3"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { FileIndex } from "../src/services/FileIndex.js"
import { tempDir } from "./support/fs.js"
import { dirRecord, withIndex } from "./support/index.js"


/**
 * Sequence numbers on disk: what a crash now would leave behind (the index and its WAL,
 * copied and opened afresh; the running index holds its file locked).
 */
const onDisk = (root: string): Array<number> => {
  const copy = fs.mkdtempSync(path.join(os.tmpdir(), "dsync-crash-"))
  try {
    for (const suffix of ["", "-wal"]) {
      const from = path.join(root, ".dsync", `index.db${suffix}`)
      if (fs.existsSync(from)) fs.copyFileSync(from, path.join(copy, `index.db${suffix}`))
    }
    const db = new Database(path.join(copy, "index.db"))
    try {
      return db.prepare<[], { sequence: number }>("SELECT sequence FROM files ORDER BY sequence").all().map((r) => r.sequence)
    } finally {
      db.close()
    }
  } finally {
    fs.rmSync(copy, { recursive: true, force: true })
  }
}

describe("index write-behind", () => {
  it.live("reads see puts not yet committed; a published sequence is already on disk", () =>
    Effect.gen(function*() {
      const root = yield* tempDir()
      yield* withIndex(root, Effect.gen(function*() {
        const index = yield* FileIndex
        const seen: Array<{ published: number; disk: Array<number> }> = []
        const watcher = yield* index.sequenceChanges.pipe(
          Stream.take(2),
          Stream.runForEach((n) => Effect.sync(() => seen.push({ published: n, disk: onDisk(root) }))),
          Effect.fork
        )
        yield* Effect.sleep("20 millis") // the subscription is in place
        // three puts in one turn: not yet committed when the reads run
        const [a, , c] = yield* Effect.all([index.put(dirRecord("a")), index.put(dirRecord("b")), index.put(dirRecord("c"))])
        expect([a.sequence, c.sequence]).toEqual([1, 3])
        expect(Option.isSome(yield* index.get("b"))).toBe(true)
        expect((yield* index.since(0, 10)).records.map((r) => r.path)).toEqual(["a", "b", "c"])
        expect(yield* index.sequence).toBe(3)
        yield* index.put(dirRecord("d"))
        yield* Fiber.join(watcher).pipe(Effect.timeout("5 seconds"))
        // the first value is the one current at subscription (0); then 3 or 4, each on disk when seen
        for (const { published, disk } of seen) expect(disk.filter((s) => s <= published).length).toBe(published)
        expect(seen.at(-1)!.published).toBeGreaterThanOrEqual(3)
      }))
    }).pipe(Effect.scoped))

  it.live("putMany and getMany: a batch is stored in order, read back pending or committed, and published once on disk", () =>
    Effect.gen(function*() {
      const root = yield* tempDir()
      yield* withIndex(root, Effect.gen(function*() {
        const index = yield* FileIndex
        yield* index.put(dirRecord("first"))
        yield* index.putMany([dirRecord("m1"), dirRecord("m2"), dirRecord("m3")])
        yield* index.putMany([])
        const got = yield* index.getMany(["m2", "absent", "first", "m3", "m1"])
        expect(got.map((r) => Option.getOrUndefined(Option.map(r, (x) => `${x.path}@${x.sequence}`)))).toEqual(["m2@3", undefined, "first@1", "m3@4", "m1@2"])
        yield* index.sequenceChanges.pipe(Stream.filter((n) => n === 4), Stream.take(1), Stream.runDrain, Effect.timeout("5 seconds"))
        expect(onDisk(root)).toEqual([1, 2, 3, 4])
        expect((yield* index.getMany(["m1", "m3"])).map((r) => Option.isSome(r))).toEqual([true, true])
      }))
    }).pipe(Effect.scoped))

  it.live("a long burst of puts is committed as it goes, a batch at a time (what waits stays bounded)", () =>
    Effect.gen(function*() {
      const root = yield* tempDir()
      yield* withIndex(root, Effect.gen(function*() {
        const index = yield* FileIndex
        // 600 puts with no turn of the scheduler between them
        const puts = Array.from({ length: 600 }, (_, i) => index.put(dirRecord(`p${i}`)))
        yield* Effect.all(puts, { discard: true })
        const disk = onDisk(root).length
        expect(disk).toBeGreaterThanOrEqual(512)
        expect(disk).toBeLessThan(600)
      }))
    }).pipe(Effect.scoped))

  it.live("what is pending when the index closes is committed; numbers go on from there", () =>
    Effect.gen(function*() {
      const root = yield* tempDir()
      yield* withIndex(root, Effect.gen(function*() {
        const index = yield* FileIndex
        for (const p of ["x", "y", "z"]) yield* index.put(dirRecord(p))
      }))
      expect(onDisk(root)).toEqual([1, 2, 3])
      const next = yield* withIndex(root, Effect.flatMap(FileIndex, (index) => index.put(dirRecord("w"))))
      expect(next.sequence).toBe(4)
    }).pipe(Effect.scoped))

  it.live("the index is this process's alone: a second one on the same folder is refused, saying why", () =>
    Effect.gen(function*() {
      const root = yield* tempDir()
      yield* withIndex(root, Effect.gen(function*() {
        const index = yield* FileIndex
        yield* index.put(dirRecord("a"))
        const second = yield* Effect.flip(withIndex(root, FileIndex))
        expect(second.message).toContain("is dsync already running on this folder?")
        expect(Option.isSome(yield* index.get("a"))).toBe(true) // the first goes on
      }))
    }).pipe(Effect.scoped), { timeout: 15_000 })
})
