import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Layer, Option, Stream } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as EventsPubSub from "../src/layers/EventsPubSub.js"
import * as FolderLocal from "../src/layers/FolderLocal.js"
import * as HasherBlake3 from "../src/layers/HasherBlake3.js"
import * as IndexSqlite from "../src/layers/IndexSqlite.js"
import * as TransferBlocks from "../src/layers/TransferBlocks.js"
import { scanAll } from "../src/programs/Scanner.js"
import { FileIndex } from "../src/services/FileIndex.js"
import { Hasher } from "../src/services/Hasher.js"
import { type BlockSource, BlockUnavailable, Transfer } from "../src/services/Transfer.js"
import { partFilesIn, tempDir } from "./support/fs.js"
import { fileRecord } from "./support/hostile.js"

const services = (root: string) =>
  TransferBlocks.layer.pipe(
    Layer.provideMerge(Layer.mergeAll(IndexSqlite.layer(root), FolderLocal.layer(root, []), HasherBlake3.layer, EventsPubSub.layer))
  )

const content = Buffer.from(Buffer.alloc(300_000).map((_, i) => (i * 31) & 0xff))

describe("Transfer (TransferBlocks)", () => {
  it.live("serves the blocks of the indexed version, in the order asked, and nothing else", () =>
    Effect.gen(function*() {
      const root = yield* tempDir()
      fs.writeFileSync(path.join(root, "f.bin"), content)
      fs.symlinkSync(root, path.join(root, "loop"))
      yield* Effect.gen(function*() {
        yield* scanAll
        const transfer = yield* Transfer
        const record = Option.getOrThrow(yield* (yield* FileIndex).get("f.bin"))
        const into = (_: number, size: number) => new Uint8Array(size)
        const blocks = yield* transfer.serve({ path: "f.bin", hash: record.hash, blocks: [2, 0] }, into).pipe(Stream.runCollect)
        const got = Chunk.toReadonlyArray(blocks)
        expect(got.map((b) => b.index)).toEqual([2, 0])
        expect(Buffer.from(got[0]!.data).equals(content.subarray(2 * 131072))).toBe(true)
        expect(Buffer.from(got[1]!.data).equals(content.subarray(0, 131072))).toBe(true)
        const fail = (request: { path: string; hash: string; blocks: Array<number> }) =>
          transfer.serve(request, into).pipe(Stream.runDrain, Effect.flip, Effect.map((e) => e.reason))
        expect(yield* fail({ path: "f.bin", hash: "0".repeat(64), blocks: [0] })).toMatch(/no such file version/)
        expect(yield* fail({ path: "f.bin", hash: record.hash, blocks: [9] })).toBe("no block 9")
        expect(yield* fail({ path: "loop/f.bin", hash: record.hash, blocks: [0] })).toMatch(/no such file version/)
        fs.truncateSync(path.join(root, "f.bin"), 1000)
        expect(yield* fail({ path: "f.bin", hash: record.hash, blocks: [1] })).toBe("the file changed while being sent")
      }).pipe(Effect.provide(services(root)))
    }).pipe(Effect.scoped))

  it.live("fetches into a verified part file, and leaves nothing when a block is bad", () =>
    Effect.gen(function*() {
      const root = yield* tempDir()
      yield* Effect.gen(function*() {
        const transfer = yield* Transfer
        const record = fileRecord("d/new.bin", content, yield* Hasher, { mode: 0o4755 })
        // a source like the peer session: it stops (fails) when the sink refuses a block
        const source = (corrupt: boolean): BlockSource => ({
          peerId: "p",
          fetchBlocks: (request, sink) =>
            Effect.suspend(() => {
              for (const i of request.blocks) {
                const block = Buffer.from(content.subarray(i * 131072, (i + 1) * 131072))
                if (corrupt) block[0]! ^= 1
                const refused = sink(i, block, false)
                if (refused) return Effect.fail(new BlockUnavailable({ reason: refused }))
              }
              return Effect.void
            }),
          fetchFiles: () => Effect.die("not a small file")
        })
        const fetched = yield* Effect.scoped(transfer.fetch(record, source(false)))
        expect(fetched.fetched).toBe(3)
        expect(fetched.part).toMatch(/^\.dsync\/parts\/\.dsync-[0-9a-f]+-[0-9a-f]+\.part$/) // where the watcher does not look
        expect(fs.readFileSync(path.join(root, fetched.part)).equals(content)).toBe(true)
        expect(fs.statSync(path.join(root, fetched.part)).mode & 0o7777).toBe(0o755) // no setuid from a peer
        fs.rmSync(path.join(root, fetched.part))
        const bad = yield* Effect.scoped(transfer.fetch({ ...record, path: "d/bad.bin" }, source(true))).pipe(Effect.flip)
        expect(bad._tag === "BlockUnavailable" && bad.reason).toMatch(/failed its hash check/)
        expect(partFilesIn(root)).toEqual([])
      }).pipe(Effect.provide(services(root)))
    }).pipe(Effect.scoped))

  it.live("serves many small files in one stream: those indexed in the version asked, by position", () =>
    Effect.gen(function*() {
      const root = yield* tempDir()
      fs.mkdirSync(path.join(root, "d"))
      for (const name of ["a.txt", "d/b.txt", "c.txt"]) fs.writeFileSync(path.join(root, name), `content of ${name}`)
      fs.writeFileSync(path.join(root, "big.bin"), content)
      fs.symlinkSync(path.join(root, "d"), path.join(root, "loop"))
      yield* Effect.gen(function*() {
        yield* scanAll
        const index = yield* FileIndex
        const hashOf = (p: string) => Effect.map(index.get(p), (r) => Option.getOrThrow(r).hash)
        const files = [
          { path: "a.txt", hash: yield* hashOf("a.txt") },
          { path: "d/b.txt", hash: "0".repeat(64) }, // another version
          { path: "loop/b.txt", hash: yield* hashOf("d/b.txt") }, // through a link
          { path: "big.bin", hash: yield* hashOf("big.bin") }, // more than one block
          { path: "c.txt", hash: yield* hashOf("c.txt") }
        ]
        const got = yield* (yield* Transfer).serveFiles(files, (_, size) => new Uint8Array(size))
        expect(got.map((b) => b.index)).toEqual([0, 4])
        expect(Buffer.from(got[1]!.data).toString()).toBe("content of c.txt")
      }).pipe(Effect.provide(services(root)))
    }).pipe(Effect.scoped))

  it.live("fetches many small files in one request: each verified, one bad or missing fails alone", () =>
    Effect.gen(function*() {
      const root = yield* tempDir()
      yield* Effect.gen(function*() {
        const hasher = yield* Hasher
        const bodies = ["first", "second", "third", "fourth"].map((w) => Buffer.from(`the ${w} small file`))
        const records = bodies.map((body, i) => fileRecord(`d/n${i}.txt`, body.toString(), hasher, { mode: 0o2640 }))
        const empty = fileRecord("d/empty.txt", "", hasher)
        let requests = 0
        const source: BlockSource = {
          peerId: "p",
          fetchBlocks: () => Effect.die("small files come in one request"),
          fetchFiles: (files, sink) =>
            Effect.sync(() => {
              requests++
              expect(files.map((f) => f.path)).toEqual(["d/n0.txt", "d/n1.txt", "d/n2.txt", "d/n3.txt"])
              expect(sink(0, bodies[0]!, false)).toBeUndefined()
              expect(sink(1, Buffer.from("not the second file"), false)).toBeUndefined() // a bad block drops that file only
              // the third never comes (the peer no longer has it)
              expect(sink(3, bodies[3]!, false)).toBeUndefined()
            })
        }
        const parts = yield* Effect.scoped(Effect.gen(function*() {
          const outcomes = yield* (yield* Transfer).fetchFiles([...records, empty], source)
          expect(requests).toBe(1)
          expect(outcomes.map((o) => o._tag)).toEqual(["Right", "Left", "Left", "Right", "Right"])
          const reasons = outcomes.flatMap((o) => (o._tag === "Left" && o.left._tag === "BlockUnavailable" ? [o.left.reason] : []))
          expect(reasons[0]).toMatch(/hash check/)
          expect(reasons[1]).toMatch(/no longer has/)
          const fetched = outcomes.flatMap((o) => (o._tag === "Right" ? [o.right] : []))
          expect(fetched.map((f) => f.fetched)).toEqual([1, 1, 0])
          expect(fs.readFileSync(path.join(root, fetched[1]!.part)).equals(bodies[3]!)).toBe(true)
          expect(fs.statSync(path.join(root, fetched[1]!.part)).mode & 0o7777).toBe(0o640) // no setgid from a peer
          expect(fs.readFileSync(path.join(root, fetched[2]!.part)).length).toBe(0)
          // the failed ones left nothing
          expect(partFilesIn(root).length).toBe(3)
          return fetched.map((f) => f.part)
        }))
        // none was renamed into place: the scope took them all away
        for (const part of parts) expect(fs.existsSync(path.join(root, part))).toBe(false)
      }).pipe(Effect.provide(services(root)))
    }).pipe(Effect.scoped))

  it.live("small files get the peer's mode whatever the umask (made with it, set again where the umask took bits)", () =>
    Effect.gen(function*() {
      const root = yield* tempDir()
      const umask = process.umask(0o027)
      yield* Effect.addFinalizer(() => Effect.sync(() => process.umask(umask)))
      yield* Effect.gen(function*() {
        const hasher = yield* Hasher
        const modes = [0o640, 0o666, 0o755, 0o400]
        const bodies = modes.map((mode) => Buffer.from(`mode ${mode.toString(8)}`))
        const records = bodies.map((body, i) => fileRecord(`m${i}.txt`, body.toString(), hasher, { mode: modes[i]! }))
        const source: BlockSource = {
          peerId: "p",
          fetchBlocks: () => Effect.die("small files come in one request"),
          fetchFiles: (_, sink) => Effect.sync(() => bodies.forEach((body, i) => sink(i, body, false)))
        }
        yield* Effect.scoped(Effect.gen(function*() {
          const outcomes = yield* (yield* Transfer).fetchFiles(records, source)
          const parts = outcomes.map((o) => (o._tag === "Right" ? o.right.part : "failed"))
          expect(parts.map((part) => fs.statSync(path.join(root, part)).mode & 0o7777)).toEqual(modes)
          expect(parts.map((part) => fs.readFileSync(path.join(root, part)).toString())).toEqual(bodies.map(String))
        }))
      }).pipe(Effect.provide(services(root)))
    }).pipe(Effect.scoped))
})
