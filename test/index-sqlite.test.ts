// The SQLite index: what a record keeps besides its wire fields, and indexes made by an
// earlier release opening as they are.
import { describe, expect, it } from "@effect/vitest"
import Database from "better-sqlite3"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as fs from "node:fs"
import * as path from "node:path"
import { MIN_BLOCK_SIZE } from "../src/domain/FileRecord.js"
import { FileIndex, type NewRecord } from "../src/services/FileIndex.js"
import { tempDir } from "./support/fs.js"
import { dirRecord, withIndex } from "./support/index.js"

const PEER = "c".repeat(16)
const SESSION = "5".repeat(16)
const dir = (p: string, extra: Partial<NewRecord> = {}) => dirRecord(p, { version: { [PEER]: 2 }, ...extra })

describe("SQLite index", () => {
  it.live("a record keeps the session it was put in place from, and the version its peer sent, across a restart", () =>
    Effect.gen(function*() {
      const root = yield* tempDir()
      yield* withIndex(root, Effect.gen(function*() {
        const index = yield* FileIndex
        yield* index.putMany([dir("from-peer", { sentBy: { session: SESSION, version: { [PEER]: 2 } } }), dir("ours")])
      }))
      yield* withIndex(root, Effect.gen(function*() {
        const index = yield* FileIndex
        const [fromPeer, ours] = (yield* index.since(0, 10)).records
        expect(fromPeer!.sentBy).toEqual({ session: SESSION, version: { [PEER]: 2 } })
        expect(ours!.sentBy).toBeUndefined()
        expect(Option.getOrThrow(yield* index.get("from-peer")).sentBy?.session).toBe(SESSION)
      }))
    }).pipe(Effect.scoped))

  it.live("leaves out of a read for a session what was put in place from it, while still in the version it sent", () =>
    Effect.gen(function*() {
      const root = yield* tempDir()
      yield* withIndex(root, Effect.gen(function*() {
        const index = yield* FileIndex
        const sent = { session: SESSION, version: { [PEER]: 2 } }
        yield* index.putMany([
          dir("ours"),
          dir("edited-since", { version: { [PEER]: 2, [index.replicaId]: 1 }, sentBy: sent }),
          dir("other-session", { sentBy: { ...sent, session: "6".repeat(16) } }),
          dir("echo-1", { sentBy: sent }),
          dir("echo-2", { sentBy: sent })
        ])
        const forSession = yield* index.since(0, 10, SESSION)
        expect(forSession.records.map((r) => r.path)).toEqual(["ours", "edited-since", "other-session"])
        expect(forSession.through).toBe(5) // read past the two left out at the end
        // the limit counts what was read, left out or not
        const firstFour = yield* index.since(0, 4, SESSION)
        expect([firstFour.records.length, firstFour.through]).toEqual([3, 4])
        expect((yield* index.since(0, 10)).records).toHaveLength(5)
        expect(yield* index.since(5, 10, SESSION)).toEqual({ records: [], through: 5 })
      }))
    }).pipe(Effect.scoped))

  it.live("an index made by an earlier release opens: its records and block locations kept, who sent a record kept from then on", () =>
    Effect.gen(function*() {
      const root = yield* tempDir()
      fs.mkdirSync(path.join(root, ".dsync"))
      const old = new Database(path.join(root, ".dsync", "index.db"))
      old.exec(`
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE files (
          path TEXT PRIMARY KEY, kind TEXT NOT NULL, size INTEGER NOT NULL, mtime_ms REAL NOT NULL,
          mode INTEGER NOT NULL, hash TEXT NOT NULL, target TEXT, block_size INTEGER NOT NULL,
          blocks TEXT NOT NULL, version TEXT NOT NULL, deleted INTEGER NOT NULL,
          sequence INTEGER NOT NULL UNIQUE, inode INTEGER NOT NULL);
        CREATE TABLE blocks (hash TEXT NOT NULL, path TEXT NOT NULL, offset INTEGER NOT NULL, size INTEGER NOT NULL);
        CREATE INDEX blocks_by_hash ON blocks(hash);
        CREATE INDEX blocks_by_path ON blocks(path);
        INSERT INTO meta VALUES ('replica_id', '00000000000000aa');
        INSERT INTO files VALUES ('kept', 'dir', 0, 1, 493, '', NULL, ${MIN_BLOCK_SIZE}, '[]', '{"00000000000000aa":1}', 0, 1, 7);
        INSERT INTO blocks VALUES ('${"ab".repeat(32)}', 'f.bin', 0, 5), ('${"cd".repeat(32)}', 'f.bin', 5, 3);
      `)
      old.close()
      yield* withIndex(root, Effect.gen(function*() {
        const index = yield* FileIndex
        expect(index.replicaId).toBe("00000000000000aa")
        const kept = Option.getOrThrow(yield* index.get("kept"))
        expect([kept.sequence, kept.inode, kept.sentBy]).toEqual([1, 7, undefined])
        yield* index.put(dir("new", { sentBy: { session: SESSION, version: { [PEER]: 2 } } }))
        expect((yield* index.since(1, 10)).records[0]!.sentBy?.session).toBe(SESSION)
        // its block locations are still found by hash
        const found = yield* index.findBlocks(["cd".repeat(32), "ab".repeat(32), "ef".repeat(32)])
        expect([...found]).toEqual([["cd".repeat(32), { path: "f.bin", offset: 5, size: 3 }], ["ab".repeat(32), { path: "f.bin", offset: 0, size: 5 }]])
      }))
      // opened again: already in this layout
      yield* withIndex(root, Effect.map(FileIndex, (index) => expect(index.replicaId).toBe("00000000000000aa")))
    }).pipe(Effect.scoped))

  it.live("finds a block by its hash among blocks whose hashes share its lookup key", () =>
    Effect.gen(function*() {
      const root = yield* tempDir()
      yield* withIndex(root, Effect.gen(function*() {
        const index = yield* FileIndex
        const prefix = "0123456789abc" // the 52 bits of the key
        const [h1, h2] = [prefix + "1".repeat(51), prefix + "2".repeat(51)]
        const file = (p: string, hash: string): NewRecord => ({
          ...dir(p), kind: "file", size: 10, hash: "9".repeat(64), blocks: [hash]
        })
        yield* index.putMany([file("one", h1), file("two", h2)])
        const found = yield* index.findBlocks([h2, h1])
        expect([found.get(h1)?.path, found.get(h2)?.path]).toEqual(["one", "two"])
      }))
    }).pipe(Effect.scoped))
})
