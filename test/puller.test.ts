import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { blockSizeFor, type FileRecord } from "../src/domain/FileRecord.js"
import * as EventsPubSub from "../src/layers/EventsPubSub.js"
import * as FolderLocal from "../src/layers/FolderLocal.js"
import * as HasherBlake3 from "../src/layers/HasherBlake3.js"
import * as IndexSqlite from "../src/layers/IndexSqlite.js"
import * as TransferBlocks from "../src/layers/TransferBlocks.js"
import { type BlockSource, Transfer } from "../src/services/Transfer.js"
import { fileHash } from "../src/programs/Content.js"
import { makePuller, SMALL_BATCH } from "../src/programs/Puller.js"
import { applyRemoteFiles } from "../src/programs/ApplyRemote.js"
import { Folder } from "../src/services/Folder.js"
import { makeTransferSlots } from "../src/programs/TransferSlots.js"
import { makePathLocks } from "../src/lib/PathLocks.js"
import { Hasher, type HasherApi } from "../src/services/Hasher.js"
import { FileIndex } from "../src/services/FileIndex.js"
import { eventually, partFilesIn, readOr, tempDir } from "./support/fs.js"

const noRecheck = { add: () => Effect.void, writing: () => <A, E, R>(effect: Effect.Effect<A, E, R>) => effect, pending: () => false }

/** A folder and the services a puller applies into it with. */
const folderServices = Effect.gen(function*() {
  const root = yield* tempDir()
  const services = yield* Layer.build(
    TransferBlocks.layer.pipe(
      Layer.provideMerge(Layer.mergeAll(IndexSqlite.layer(root), FolderLocal.layer(root, []), HasherBlake3.layer, EventsPubSub.layer))
    )
  )
  return { root, services, hasher: yield* Effect.provide(Hasher, services) }
})

/** A peer's record of a file with `content`. */
const fileRecordOf = (hasher: HasherApi, p: string, content: Buffer, sequence: number): FileRecord => {
  const size = blockSizeFor(content.length)
  const blocks: Array<string> = []
  for (let at = 0; at < content.length; at += size) blocks.push(hasher.hash(content.subarray(at, at + size)))
  return {
    path: p, kind: "file", size: content.length, mtimeMs: 1_000_000, mode: 0o644,
    hash: fileHash(hasher, blocks, content.length), blockSize: blockSizeFor(content.length), blocks,
    version: { aaaaaaaaaaaaaaaa: 1 }, deleted: false, sequence
  }
}

describe("puller", () => {
  /**
   * Pull `contents` (as f0.txt, f1.txt, ...) through a puller with `slots` transfer slots
   * from a peer that takes 50 ms per file; returns the most files it had in flight at once.
   */
  const pullAll = (contents: ReadonlyArray<Buffer>, slots: number) =>
    Effect.gen(function*() {
      const { root, services, hasher } = yield* folderServices
      const records = contents.map((content, i) => fileRecordOf(hasher, `f${i}.txt`, content, i + 1))
      let inFlight = 0
      let most = 0
      const source: BlockSource = {
        peerId: "p",
        fetchBlocks: (request, sink) =>
          Effect.gen(function*() {
            inFlight++
            most = Math.max(most, inFlight)
            yield* Effect.sleep("50 millis")
            const content = contents[Number(request.path.slice(1, -4))]!
            const size = blockSizeFor(content.length)
            for (const b of request.blocks) expect(sink(b, content.subarray(b * size, (b + 1) * size), false)).toBeUndefined()
            inFlight--
          }),
        fetchFiles: (files, sink) =>
          Effect.gen(function*() {
            inFlight += files.length
            most = Math.max(most, inFlight)
            yield* Effect.sleep("50 millis")
            files.forEach((file, i) => expect(sink(i, contents[Number(file.path.slice(1, -4))]!, false)).toBeUndefined())
            inFlight -= files.length
          })
      }
      let released = 0
      const puller = yield* makePuller(source, {
        withSlot: (yield* makeTransferSlots(slots)).withSlot("p"),
        release: (item) => Effect.sync(() => void (released += item.cost)),
        backlog: { adjust: () => Effect.void },
        paths: makePathLocks(),
        recheck: noRecheck
      })
      yield* Effect.forkScoped(Effect.provide(puller.run, services))
      yield* puller.offer(records.map((record) => ({ record, cost: 10 })))
      yield* eventually("all written", () => contents.every((c, i) => fs.existsSync(path.join(root, `f${i}.txt`)) && fs.readFileSync(path.join(root, `f${i}.txt`)).equals(c)), 20_000)
      yield* eventually("every record's cost returned", () => released === 10 * contents.length)
      expect(partFilesIn(root)).toEqual([])
      return most
    })

  it.live("keeps at most max_concurrent_transfers large files in flight", () =>
    Effect.gen(function*() {
      // two blocks each: a stream per file, a slot per file
      const contents = Array.from({ length: 6 }, (_, i) => Buffer.alloc(200 * 1024, i))
      expect(yield* pullAll(contents, 2)).toBe(2)
    }).pipe(Effect.scoped))

  it.live("small files travel in batches, one slot per batch of SMALL_BATCH", () =>
    Effect.gen(function*() {
      const contents = Array.from({ length: 3 * SMALL_BATCH }, (_, i) => Buffer.from(`small file number ${i}`))
      // one slot: one batch at a time, all its files in one request
      expect(yield* pullAll(contents, 1)).toBe(SMALL_BATCH)
    }).pipe(Effect.scoped))

  it.live("a version announced by two peers at once is fetched once, from one of them", () =>
    Effect.gen(function*() {
      const { root, services, hasher } = yield* folderServices
      const content = Buffer.from("one new file, two peers have it")
      const record = fileRecordOf(hasher, "new.txt", content, 1)
      let fetches = 0
      const peer = (peerId: string): BlockSource => ({
        peerId,
        fetchBlocks: (_request, sink) =>
          Effect.gen(function*() {
            fetches++
            yield* Effect.sleep("100 millis")
            expect(sink(0, content, false)).toBeUndefined()
          }),
        fetchFiles: (files, sink) =>
          Effect.gen(function*() {
            fetches += files.length
            yield* Effect.sleep("100 millis")
            expect(sink(0, content, false)).toBeUndefined()
          })
      })
      const slots = yield* makeTransferSlots(4)
      const paths = makePathLocks()
      const pullers = yield* Effect.forEach(["p", "q"], (id) =>
        makePuller(peer(id), { withSlot: slots.withSlot(id), release: () => Effect.void, backlog: { adjust: () => Effect.void }, paths, recheck: noRecheck }))
      for (const puller of pullers) yield* Effect.forkScoped(Effect.provide(puller.run, services))
      yield* Effect.forEach(pullers, (puller) => puller.offer([{ record, cost: 1 }]), { concurrency: "unbounded" })
      yield* eventually("written", () => readOr(path.join(root, "new.txt")) === content.toString())
      yield* Effect.sleep("300 millis")
      expect(fetches).toBe(1)
    }).pipe(Effect.scoped))

  it.live("a peer's deletion of a folder that still holds a file is tried again: once the file's deletion comes, the folder goes", () =>
    Effect.gen(function*() {
      const { root, services, hasher } = yield* folderServices
      const index = yield* Effect.provide(FileIndex, services)
      fs.mkdirSync(path.join(root, "d"))
      fs.writeFileSync(path.join(root, "d", "f.txt"), "inside")
      const dirStat = fs.statSync(path.join(root, "d"))
      const fileRecord = fileRecordOf(hasher, "d/f.txt", Buffer.from("inside"), 1)
      const dirRecord: FileRecord = {
        path: "d", kind: "dir", size: 0, mtimeMs: dirStat.mtimeMs, mode: dirStat.mode & 0o777, hash: "", blockSize: blockSizeFor(0), blocks: [],
        version: { aaaaaaaaaaaaaaaa: 1 }, deleted: false, sequence: 2
      }
      yield* index.put({ ...dirRecord, inode: dirStat.ino })
      yield* index.put({ ...fileRecord, mtimeMs: fs.statSync(path.join(root, "d", "f.txt")).mtimeMs, inode: fs.statSync(path.join(root, "d", "f.txt")).ino })
      // the peer deleted both; the folder's deletion comes first (from another peer, or an earlier batch)
      const deleted = (r: FileRecord, sequence: number): FileRecord => ({ ...r, deleted: true, size: 0, hash: "", blocks: [], version: { aaaaaaaaaaaaaaaa: 2 }, sequence })
      const source: BlockSource = { peerId: "p", fetchBlocks: () => Effect.void, fetchFiles: () => Effect.void }
      const puller = yield* makePuller(source, {
        withSlot: (effect) => effect, release: () => Effect.void, backlog: { adjust: () => Effect.void }, paths: makePathLocks(), recheck: noRecheck
      })
      yield* Effect.forkScoped(Effect.provide(puller.run, services))
      yield* puller.offer([{ record: deleted(dirRecord, 3), cost: 1 }])
      yield* Effect.sleep("300 millis")
      expect(fs.existsSync(path.join(root, "d", "f.txt"))).toBe(true) // not empty: not removed yet
      yield* puller.offer([{ record: deleted(fileRecord, 4), cost: 1 }])
      yield* eventually("the folder removed on its next try", () => !fs.existsSync(path.join(root, "d")), 5_000)
      const stored = yield* index.get("d")
      expect(stored._tag === "Some" && stored.value.deleted).toBe(true)
    }).pipe(Effect.scoped))

  it.live("a record that failed is not tried again once a newer one for its path came, even one already applied", () =>
    Effect.gen(function*() {
      const { root, services, hasher } = yield* folderServices
      const index = yield* Effect.provide(FileIndex, services)
      // ours: an edit of our own (b), older than the peer's concurrent one (a)
      fs.writeFileSync(path.join(root, "f.txt"), "ours")
      const st = fs.statSync(path.join(root, "f.txt"))
      const ours = fileRecordOf(hasher, "f.txt", Buffer.from("ours"), 1)
      yield* index.put({ ...ours, version: { bbbbbbbbbbbbbbbb: 1 }, mtimeMs: st.mtimeMs, inode: st.ino })
      const theirs = { ...fileRecordOf(hasher, "f.txt", Buffer.from("theirs"), 2), mtimeMs: st.mtimeMs + 60_000 }
      // its content is gone from the peer by the time it is asked for (deleted there since)
      const asked: Array<string> = []
      const source: BlockSource = { peerId: "p", fetchBlocks: () => Effect.void, fetchFiles: (files) => Effect.sync(() => void asked.push(...files.map((f) => f.path))) }
      const puller = yield* makePuller(source, {
        withSlot: (effect) => effect, release: () => Effect.void, backlog: { adjust: () => Effect.void }, paths: makePathLocks(), recheck: noRecheck
      })
      yield* Effect.forkScoped(Effect.provide(puller.run, services))
      yield* puller.offer([{ record: theirs, cost: 1 }])
      yield* eventually("asked for once", () => asked.length === 1)
      // then its deletion: concurrent with ours, which it loses to (an edit beats a delete), applied at once
      yield* puller.offer([{ record: { ...theirs, deleted: true, size: 0, hash: "", blocks: [], version: { aaaaaaaaaaaaaaaa: 2 }, sequence: 3 }, cost: 1 }])
      yield* Effect.sleep("2500 millis") // past the first retry (1 s after the failure)
      expect(asked).toEqual(["f.txt"])
      expect(fs.readFileSync(path.join(root, "f.txt"), "utf8")).toBe("ours")
    }).pipe(Effect.scoped))

  it.live("records of versions held here are settled at once: no slot, no request (their paths are still rechecked)", () =>
    Effect.gen(function*() {
      const { services, hasher } = yield* folderServices
      const index = yield* Effect.provide(FileIndex, services)
      // what the peer echoes after receiving from us: our own records, same versions
      const records = Array.from({ length: 40 }, (_, i) => fileRecordOf(hasher, `have${i}.txt`, Buffer.from(`have ${i}`), i + 1))
      for (const record of records) yield* index.put({ ...record, inode: 0 })
      let requests = 0
      let slotsTaken = 0
      const rechecked: Array<string> = []
      let settled = 0
      const source: BlockSource = {
        peerId: "p",
        fetchBlocks: () => Effect.sync(() => void requests++),
        fetchFiles: () => Effect.sync(() => void requests++)
      }
      const puller = yield* makePuller(source, {
        withSlot: (effect) => Effect.zipRight(Effect.sync(() => void slotsTaken++), effect),
        release: (_item, done) => Effect.sync(() => void (done && settled++)),
        backlog: { adjust: () => Effect.void },
        paths: makePathLocks(),
        recheck: { ...noRecheck, add: (p) => Effect.sync(() => void rechecked.push(p)) }
      })
      yield* Effect.forkScoped(Effect.provide(puller.run, services))
      yield* puller.offer(records.map((record) => ({ record, cost: 1 })))
      yield* eventually("every record settled", () => settled === records.length)
      expect({ requests, slotsTaken }).toEqual({ requests: 0, slotsTaken: 0 })
      expect(rechecked.sort()).toEqual(records.map((r) => r.path).sort())
    }).pipe(Effect.scoped))

  it.live("a batch's file whose part file cannot be made fails alone: the others are written, and no part file is left", () =>
    Effect.gen(function*() {
      const { root, services, hasher } = yield* folderServices
      const contents = ["first", "second", "last"].map((text) => Buffer.from(text))
      const records = ["a.txt", "b.txt", "c.txt"].map((p, i) => fileRecordOf(hasher, p, contents[i]!, i + 1))
      const source: BlockSource = {
        peerId: "p",
        fetchBlocks: () => Effect.void,
        fetchFiles: (files, sink) => Effect.sync(() => files.forEach((_, i) => void sink(i, contents[i]!, false)))
      }
      // the second create fails (a full disk, no inodes left)
      const disk = (yield* Effect.provide(Folder, services)).fs
      const create = disk.createExclusive.bind(disk)
      let creates = 0
      disk.createExclusive = (rel, mode, makeParents) => {
        if (++creates === 2) throw Object.assign(new Error("ENOSPC: no space left on device"), { code: "ENOSPC" })
        return create(rel, mode, makeParents)
      }
      const parts = yield* Effect.scoped(Effect.gen(function*() {
        const transfer = yield* Transfer
        const fetched = yield* transfer.fetchFiles(records, source)
        expect(fetched.map((f) => (f._tag === "Left" ? f.left._tag : "written"))).toEqual(["written", "FsError", "written"])
        const written = fetched.flatMap((f) => (f._tag === "Right" ? [f.right.part] : []))
        expect(written.map((part) => fs.readFileSync(path.join(root, part), "utf8"))).toEqual(["first", "last"])
        return written
      }).pipe(Effect.provide(services)))
      expect(parts).toHaveLength(2)
      // not renamed into place here: the scope's end removed them; the failed one left nothing
      expect(partFilesIn(root)).toEqual([])
    }).pipe(Effect.scoped))

  it.live("a batch's file whose folder cannot be made (a file is there) fails alone: the others are put in place, and no part file is left", () =>
    Effect.gen(function*() {
      const { root, services, hasher } = yield* folderServices
      fs.writeFileSync(path.join(root, "blocker"), "a file where the peer has a folder")
      const contents = ["first", "under a file", "last"].map((text) => Buffer.from(text))
      const records = ["a.txt", "blocker/b.txt", "c.txt"].map((p, i) => fileRecordOf(hasher, p, contents[i]!, i + 1))
      const source: BlockSource = {
        peerId: "p",
        fetchBlocks: () => Effect.void,
        fetchFiles: (files, sink) => Effect.sync(() => files.forEach((file, i) => void sink(i, contents[records.findIndex((r) => r.path === file.path)]!, false)))
      }
      const outcomes = yield* applyRemoteFiles(records, source).pipe(Effect.provide(services), Effect.scoped)
      expect(outcomes).toEqual([true, false, true])
      expect(["a.txt", "c.txt", "blocker"].map((p) => readOr(path.join(root, p)))).toEqual(["first", "last", "a file where the peer has a folder"])
      expect(partFilesIn(root)).toEqual([])
    }).pipe(Effect.scoped))
})
