import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Option } from "effect"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import * as FolderLocal from "../src/layers/FolderLocal.js"
import * as HasherBlake3 from "../src/layers/HasherBlake3.js"
import * as IndexSqlite from "../src/layers/IndexSqlite.js"
import { createPart, PART_DIR } from "../src/lib/PartFile.js"
import { scanAll, scanPath, scanTree } from "../src/programs/Scanner.js"
import { contentHashedAhead, fileHash } from "../src/programs/Content.js"
import { Hasher } from "../src/services/Hasher.js"
import { FileIndex } from "../src/services/FileIndex.js"
import { Folder } from "../src/services/Folder.js"
import { tempDir } from "./support/fs.js"
import { write } from "./support/nodes.js"

const services = (root: string) =>
  Layer.mergeAll(IndexSqlite.layer(root), FolderLocal.layer(root, ["*.log"]), HasherBlake3.layer)

/** Run `effect` against a freshly opened index of `root` (closed afterwards, like a restart). */
const withIndex = <A, E>(root: string, effect: Effect.Effect<A, E, FileIndex | FolderLocalServices>) =>
  Effect.provide(effect, Layer.fresh(services(root)))
type FolderLocalServices = Layer.Layer.Success<ReturnType<typeof services>>

const get = (p: string) => Effect.flatMap(FileIndex, (index) => index.get(p)).pipe(Effect.map(Option.getOrUndefined))

/** HasherBlake3 with workers, counting the small files they hashed ahead. */
const countingWorkers = (counted: { files: number }) =>
  Layer.effect(
    Hasher,
    Effect.map(Hasher, (hasher) => ({
      ...hasher,
      hashSmallFiles: (paths: ReadonlyArray<string>, maxSize: number, blockSize: number) =>
        Effect.tap(hasher.hashSmallFiles!(paths, maxSize, blockSize), (results) => {
          counted.files += results.filter((r) => r !== undefined).length
        })
    }))
  ).pipe(Layer.provide(HasherBlake3.layerWithWorkers(1)))

describe("index and scanner", () => {
  it.live("a first scan hashes a folder's new small files ahead on the hash workers, to the same records as on the main thread", () =>
    Effect.gen(function*() {
      const roots = [yield* tempDir(), yield* tempDir()]
      for (const root of roots) {
        for (let i = 0; i < 40; i++) write(root, `d${i % 4}/f${i}.txt`, `file ${i} `.repeat(i * 10), new Date(2020, 0, 1))
        for (let i = 0; i < 600; i++) write(root, `flat/g${i}`, `${i}`, new Date(2020, 0, 1)) // walked in batches
        write(root, "d0/big.bin", "x".repeat(1024 * 1024 + 1), new Date(2020, 0, 1)) // past the small-file size: hashed as usual
        write(root, "d1/skip.log", "ignored", new Date(2020, 0, 1))
      }
      const counted = { files: 0 }
      const records = (root: string, hasher: Layer.Layer<Hasher>) =>
        Effect.provide(
          Effect.gen(function*() {
            yield* scanAll
            const all = (yield* Effect.flatMap(FileIndex, (index) => index.since(0, 10_000))).records
            return all.map(({ path, kind, size, hash, blocks }) => ({ path, kind, size, hash, blocks })).sort((a, b) => a.path.localeCompare(b.path))
          }),
          Layer.fresh(Layer.mergeAll(IndexSqlite.layer(root), FolderLocal.layer(root, ["*.log"]), hasher))
        )
      const onThread = yield* records(roots[0]!, HasherBlake3.layer)
      const ahead = yield* records(roots[1]!, countingWorkers(counted))
      expect(ahead).toEqual(onThread)
      expect(onThread.filter((r) => r.kind === "file")).toHaveLength(641)
      expect(counted.files).toBe(640) // not the large one, not the ignored one
    }).pipe(Effect.scoped))

  it("takes a file hashed ahead only while its inode, size and mtime are what was hashed", () =>
    Effect.gen(function*() {
      const hasher = yield* Hasher
      const hashed = { ino: 7, size: 3, mtimeMs: 1000, blocks: [hasher.hash(Buffer.from("abc"))], after: { size: 3, mtimeMs: 1000 } }
      const taken = contentHashedAhead(hasher, hashed, { ino: 7, size: 3, mtimeMs: 1000 })
      expect(taken?.content.hash).toBe(fileHash(hasher, hashed.blocks, 3))
      expect(taken?.after).toEqual({ size: 3, mtimeMs: 1000 })
      expect(contentHashedAhead(hasher, hashed, { ino: 8, size: 3, mtimeMs: 1000 })).toBeUndefined() // replaced
      expect(contentHashedAhead(hasher, hashed, { ino: 7, size: 4, mtimeMs: 1000 })).toBeUndefined() // grown
      expect(contentHashedAhead(hasher, hashed, { ino: 7, size: 3, mtimeMs: 2000 })).toBeUndefined() // rewritten
      expect(contentHashedAhead(hasher, undefined, { ino: 7, size: 3, mtimeMs: 1000 })).toBeUndefined()
    }).pipe(Effect.provide(HasherBlake3.layer), Effect.runPromise))

  it.live("keeps its replica id, reuses hashes of unchanged files, and records deletions made while stopped", () =>
    Effect.gen(function*() {
      const root = yield* tempDir()
      write(root, "a.txt", "alpha", new Date(2020, 0, 1))
      write(root, "sub/b.bin", Array.from({ length: 300_000 / 6 }, (_, i) => String(i).padStart(6, "0")).join(""), new Date(2020, 0, 1))
      write(root, "skip.log", "ignored", new Date(2020, 0, 1))

      const first = yield* withIndex(root, Effect.gen(function*() {
        const index = yield* FileIndex
        yield* scanAll
        const b = (yield* get("sub/b.bin"))!
        expect(b.blocks).toHaveLength(3) // 300 000 bytes in 128 KiB blocks
        expect(b.size).toBe(300_000)
        expect(yield* get("skip.log")).toBeUndefined()
        expect(yield* get("sub")).toMatchObject({ kind: "dir", deleted: false })
        const locations = yield* index.findBlocks([b.blocks[1]!, b.blocks[2]!, "0".repeat(64)])
        expect(locations.get(b.blocks[1]!)).toEqual({ path: "sub/b.bin", offset: 131072, size: 131072 })
        expect(locations.get(b.blocks[2]!)).toEqual({ path: "sub/b.bin", offset: 262144, size: 300_000 - 262144 })
        expect(locations.size).toBe(2)
        return { replicaId: index.replicaId, sequence: yield* index.sequence, a: (yield* get("a.txt"))! }
      }))

      fs.unlinkSync(path.join(root, "a.txt"))
      yield* withIndex(root, Effect.gen(function*() {
        const index = yield* FileIndex
        expect(index.replicaId).toBe(first.replicaId)
        yield* scanAll
        // only the deletion is new: unchanged files kept their versions
        expect(yield* index.sequence).toBe(first.sequence + 1)
        const a = (yield* get("a.txt"))!
        expect(a.deleted).toBe(true)
        expect(a.version[first.replicaId]).toBe(first.a.version[first.replicaId]! + 1)
        expect((yield* index.since(first.sequence, 10)).records).toHaveLength(1)
      }))
    }).pipe(Effect.scoped))

  it.live("records as deleted, at the next start, trees removed and folders replaced by a file or a link", () =>
    Effect.gen(function*() {
      const root = yield* tempDir()
      const old = new Date(2020, 0, 1)
      write(root, "keep/k.txt", "stays", old)
      write(root, "gone/x.txt", "x", old)
      write(root, "gone/deep/er/y.txt", "y", old)
      // more than one page of a vanished folder's entries (read 500 at a time)
      for (let i = 0; i < 520; i++) write(root, `big/f${i}.txt`, String(i), old)
      write(root, "tofile/a.txt", "a", old)
      write(root, "tolink/b.txt", "b", old)
      yield* withIndex(root, scanAll)

      fs.rmSync(path.join(root, "gone"), { recursive: true })
      fs.rmSync(path.join(root, "big"), { recursive: true })
      fs.rmSync(path.join(root, "tofile"), { recursive: true })
      write(root, "tofile", "a file now", old)
      fs.rmSync(path.join(root, "tolink"), { recursive: true })
      fs.symlinkSync("keep", path.join(root, "tolink"))
      yield* withIndex(root, Effect.gen(function*() {
        const index = yield* FileIndex
        const before = yield* index.sequence
        yield* scanAll
        const deleted = ["gone", "gone/x.txt", "gone/deep", "gone/deep/er", "gone/deep/er/y.txt", "big", "big/f0.txt", "big/f519.txt", "tofile/a.txt", "tolink/b.txt"]
        for (const p of deleted) expect((yield* get(p))?.deleted, p).toBe(true)
        expect(yield* get("tofile")).toMatchObject({ kind: "file", deleted: false })
        expect(yield* get("tolink")).toMatchObject({ kind: "symlink", deleted: false })
        expect(yield* get("keep/k.txt")).toMatchObject({ deleted: false })
        // each deletion once, and a folder's contents before the folder
        const changes = (yield* index.since(before, 2000)).records
        expect(changes).toHaveLength(5 + 521 + 2 + 2)
        const at = (p: string) => changes.findIndex((r) => r.path === p)
        expect(at("gone/deep/er/y.txt")).toBeLessThan(at("gone/deep/er"))
        expect(at("gone/deep")).toBeLessThan(at("gone"))
        expect(at("big/f0.txt")).toBeLessThan(at("big"))
      }))
    }).pipe(Effect.scoped), { timeout: 60_000 })

  it.live("a rescan looks up no unchanged file's record, and still finds each change by its stat", () =>
    Effect.gen(function*() {
      const root = yield* tempDir()
      const old = new Date(2020, 0, 1)
      for (let i = 0; i < 300; i++) write(root, `d/f${i}.txt`, `file ${String(i).padStart(3, "0")}`, old)
      write(root, "same-size.txt", "aaaa", old)
      write(root, "replaced.txt", "bbbb", old)
      write(root, "mode.sh", "cccc", old)
      // what the scan asks the index for, path by path
      const lookups: Array<string> = []
      const counting = Layer.effect(
        FileIndex,
        Effect.map(FileIndex, (index) => ({
          ...index,
          get: (p: string) => Effect.zipRight(Effect.sync(() => lookups.push(p)), index.get(p)),
          getMany: (paths: ReadonlyArray<string>) => Effect.zipRight(Effect.sync(() => lookups.push(...paths)), index.getMany(paths))
        }))
      ).pipe(Layer.provideMerge(IndexSqlite.layer(root)))
      const layer = Layer.mergeAll(counting, FolderLocal.layer(root, []), HasherBlake3.layer)
      yield* Effect.provide(Effect.gen(function*() {
        const index = yield* FileIndex
        yield* scanAll
        const before = yield* index.sequence
        lookups.length = 0
        yield* scanAll
        expect(yield* index.sequence).toBe(before)
        expect(lookups.filter((p) => p.startsWith("d/f"))).toEqual([])

        // same size, new mtime; a new inode with the old size and mtime; a chmod alone
        write(root, "same-size.txt", "AAAA", new Date(2021, 0, 1))
        write(root, "replaced.tmp", "BBBB", old)
        fs.renameSync(path.join(root, "replaced.tmp"), path.join(root, "replaced.txt"))
        fs.chmodSync(path.join(root, "mode.sh"), 0o755)
        lookups.length = 0
        yield* scanAll
        expect(yield* index.sequence).toBe(before + 3)
        // (a folder is looked at each time: what it holds may be new)
        expect([...new Set(lookups)].sort()).toEqual(["d", "mode.sh", "replaced.txt", "same-size.txt"])
        const hashOf = (text: string) => Effect.map(Hasher, (hasher) => fileHash(hasher, [hasher.hash(Buffer.from(text))], text.length))
        expect((yield* get("same-size.txt"))!.hash).toBe(yield* hashOf("AAAA"))
        expect((yield* get("replaced.txt"))!.hash).toBe(yield* hashOf("BBBB"))
        expect((yield* get("mode.sh"))!.mode).toBe(0o755)
      }), layer)
    }).pipe(Effect.scoped))

  it.live("makes a new version for a content or mode change, not for a touch", () =>
    Effect.gen(function*() {
      const root = yield* tempDir()
      write(root, "f.sh", "echo hi", new Date(2020, 0, 1))
      yield* withIndex(root, Effect.gen(function*() {
        const index = yield* FileIndex
        yield* scanAll
        const before = yield* index.sequence
        fs.utimesSync(path.join(root, "f.sh"), new Date(2021, 0, 1), new Date(2021, 0, 1))
        expect(yield* scanPath("f.sh")).toBe("unchanged")
        expect(yield* index.sequence).toBe(before)
        fs.chmodSync(path.join(root, "f.sh"), 0o755)
        expect(yield* scanPath("f.sh")).toBe("changed")
        expect((yield* get("f.sh"))!.mode).toBe(0o755)
        write(root, "f.sh", "echo changed", new Date(2022, 0, 1))
        expect(yield* scanPath("f.sh")).toBe("changed")
        expect(yield* index.sequence).toBe(before + 2)
      }))
    }).pipe(Effect.scoped))

  it.live("does not announce a file that is still being written until it settles", () =>
    Effect.gen(function*() {
      const root = yield* tempDir()
      yield* withIndex(root, Effect.gen(function*() {
        const file = path.join(root, "growing.txt")
        // a file whose mtime stays fresh is still being written (as a copy's is): its
        // mtime is put 2 s ahead, so it looks fresh however slowly this machine runs
        const touch = (ms: number) => fs.utimesSync(file, new Date(), new Date(ms))
        fs.writeFileSync(file, "part 1")
        touch(Date.now() + 2_000)
        const scanning = yield* Effect.fork(scanPath("growing.txt"))
        yield* Effect.sleep("200 millis")
        expect(scanning.unsafePoll()).toBeNull() // waiting for it to settle
        expect(yield* get("growing.txt")).toBeUndefined()
        // the last write: it settles a moment later, and that is what is indexed
        fs.appendFileSync(file, ", part 2")
        touch(Date.now())
        expect(yield* Fiber.join(scanning)).toBe("changed")
        const record = (yield* get("growing.txt"))!
        expect(record.size).toBe("part 1, part 2".length)
      }))
    }).pipe(Effect.scoped))

  it.live("removes stale partial downloads: all at start, later those no download is writing", () =>
    Effect.gen(function*() {
      const root = yield* tempDir()
      write(root, "sub/.dsync-0123abcd-89abcdef.part", "half a file")
      write(root, "sub/user.part", "not ours")
      write(root, `${PART_DIR}/.dsync-0123abcd-0badcafe.part`, "half a file in the part folder")
      const present = (rel: string) => fs.lstatSync(path.join(root, rel), { throwIfNoEntry: false }) !== undefined // (a link's target is not there)
      yield* withIndex(root, Effect.gen(function*() {
        const folder = yield* Folder
        // downloads in progress (in the part folder, and a symlink's beside its target):
        // their part files survive a later scan while their scope is open
        const writing = yield* Effect.scoped(Effect.gen(function*() {
          const parts = [
            yield* createPart(folder.fs, "sub/f.txt", "feedbeef", (p) => fs.closeSync(folder.fs.createExclusive(p, 0o600))),
            yield* createPart(folder.fs, "sub/link", "0", (p) => folder.fs.symlink("f.txt", p), "beside")
          ]
          expect(parts.map((p) => path.posix.dirname(p))).toEqual([PART_DIR, "sub"])
          yield* scanAll
          expect(parts.map(present)).toEqual([true, true])
          // those left behind (a stopped run, or moved here with its folder) go at once
          expect(fs.existsSync(path.join(root, "sub/.dsync-0123abcd-89abcdef.part"))).toBe(false)
          expect(fs.existsSync(path.join(root, PART_DIR, ".dsync-0123abcd-0badcafe.part"))).toBe(false)
          return parts
        }))
        // the downloads' scope closed successfully (renamed into place, here never): no longer in progress
        yield* scanAll
        expect(writing.map(present)).toEqual([false, false])
      }))
      write(root, "sub/.dsync-0123abcd-01234567.part", "left by a run that stopped")
      write(root, `${PART_DIR}/.dsync-0123abcd-01234567.part`, "left by a run that stopped")
      yield* withIndex(root, scanAll)
      expect(fs.existsSync(path.join(root, "sub/.dsync-0123abcd-01234567.part"))).toBe(false)
      expect(fs.existsSync(path.join(root, PART_DIR, ".dsync-0123abcd-01234567.part"))).toBe(false)
      expect(fs.existsSync(path.join(root, "sub/user.part"))).toBe(true)
    }).pipe(Effect.scoped))

  it.live("skips what it cannot sync (a named pipe, a vanished file) without hanging or failing", () =>
    Effect.gen(function*() {
      const root = yield* tempDir()
      execFileSync("mkfifo", [path.join(root, "pipe")])
      write(root, "ok.txt", "fine", new Date(2020, 0, 1))
      yield* withIndex(root, Effect.gen(function*() {
        yield* scanAll.pipe(Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error("scan hung on a FIFO") }))
        expect(yield* get("pipe")).toBeUndefined()
        expect((yield* get("ok.txt"))?.deleted).toBe(false)
        expect(yield* scanPath("never-existed.txt")).toBe("unchanged")
      }))
    }).pipe(Effect.scoped))

  it.live("a folder gone by the time it is read (the old name of a rename) takes what the index held in it along: each a tombstone", () =>
    Effect.gen(function*() {
      const root = yield* tempDir()
      write(root, "d/f.txt", "in d", new Date(2020, 0, 1))
      write(root, "d/sub/g.txt", "deeper", new Date(2020, 0, 1))
      yield* withIndex(root, Effect.gen(function*() {
        yield* scanAll
        // renamed after a watcher saw it as a folder, before its walk reads it
        fs.renameSync(path.join(root, "d"), path.join(root, "d2"))
        yield* scanTree("d")
        expect(yield* Effect.forEach(["d/f.txt", "d/sub/g.txt", "d/sub", "d"], (p) => Effect.map(get(p), (r) => r?.deleted))).toEqual([true, true, true, true])
      }))
    }).pipe(Effect.scoped))
})
