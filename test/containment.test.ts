// What a peer that completes the handshake must not be able to do, each finding of the
// security review driven through a running node (in-memory network, real folders).
import { describe, expect, it } from "@effect/vitest"
import Database from "better-sqlite3"
import { Effect, Option } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { Worker } from "node:worker_threads"
import { FileRequest, FilesRequest, IndexBatch } from "../src/domain/Messages.js"
import { conflictPath } from "../src/domain/Reconcile.js"
import { RootedFs } from "../src/lib/RootedFs.js"
import { fileHash } from "../src/programs/Content.js"
import { decodeFrame, encodeMessage } from "../src/lib/Wire.js"
import { makeNetwork } from "../src/Testing.js"
import { describeTree, eventually, folderWithOutside, partFilesIn, readOr, tempDir } from "./support/fs.js"
import { askedFiles, EVIL_REPLICA, fileRecord, hostileClient, serveFiles, symlinkRecord } from "./support/hostile.js"
import { captureLogs, memoryNode, write } from "./support/nodes.js"
import { SMALL_BATCH } from "../src/programs/Puller.js"

const DAY = 86_400_000


/** Read frames until the StreamEnd of `stream`; its error text, or undefined when the file was served. */
const awaitStreamEnd = (channel: { receive: Effect.Effect<Uint8Array, unknown> }, stream: number) =>
  Effect.gen(function*() {
    for (let i = 0; i < 10_000; i++) {
      const frame = yield* Effect.flatMap(channel.receive, decodeFrame)
      if (frame._tag === "StreamEnd" && frame.stream === stream) return frame.error
      if (frame._tag === "BlockData" && frame.stream === stream) return "served a block"
    }
    return "no StreamEnd"
  }).pipe(Effect.timeout("10 seconds"))

describe("containment: a peer never reaches outside the folder", () => {
  it.live("a symlink and a file beneath it, 2,000 pairs in batches, write nothing outside and read nothing from there", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const { root, outside, snapshot } = yield* folderWithOutside
      const before = snapshot()
      const network = makeNetwork()
      const node = yield* memoryNode(network, "a", root, [])
      const { channel, hasher } = yield* hostileClient(network)
      const pwned = Buffer.from("ssh-ed25519 AAAA attacker")
      const contents = new Map<string, Buffer>()
      const PAIRS = 2_000
      for (let batch = 0; batch < PAIRS / 500; batch++) {
        const records = []
        for (let i = batch * 500; i < (batch + 1) * 500; i++) {
          // half the pairs announce the link first, half the file first
          const link = symlinkRecord(`d${i}`, outside, hasher)
          const file = fileRecord(`d${i}/authorized_keys`, pwned, hasher)
          contents.set(file.path, pwned)
          records.push(...(i % 2 === 0 ? [link, file] : [file, link]))
        }
        yield* channel.send(encodeMessage(new IndexBatch({ records, initialDone: batch === PAIRS / 500 - 1 })))
      }
      yield* serveFiles(channel, contents, { quietMs: 3_000 })
      expect(snapshot()).toBe(before)
      // whatever won each race, nothing is a file reached through a link
      for (let i = 0; i < PAIRS; i++) {
        const d = fs.lstatSync(path.join(root, `d${i}`), { throwIfNoEntry: false })
        if (!d?.isSymbolicLink()) continue
        const indexed = yield* node.record(`d${i}/authorized_keys`)
        expect(Option.isNone(indexed) || indexed.value.deleted, `d${i}`).toBe(true)
      }
      // a link on disk first, then (a later batch) a file beneath it: only the rooted
      // calls stop this one, the apply order cannot
      yield* channel.send(encodeMessage(new IndexBatch({ records: [symlinkRecord("later", outside, hasher)], initialDone: false })))
      yield* eventually("the link is on disk", () => fs.lstatSync(path.join(root, "later"), { throwIfNoEntry: false })?.isSymbolicLink() === true)
      const beneath = fileRecord("later/authorized_keys", pwned, hasher, { mtimeMs: Date.now() + 3_600_000, version: { [EVIL_REPLICA]: 2 } })
      yield* channel.send(encodeMessage(new IndexBatch({ records: [beneath], initialDone: false })))
      yield* serveFiles(channel, new Map([[beneath.path, pwned]]), { quietMs: 1_500 })
      expect(snapshot()).toBe(before)
      // reading back through a link: a record naming the outside file, then a request for it
      const secret = fileRecord("d0/secret", fs.readFileSync(path.join(outside, "secret")), hasher)
      yield* channel.send(encodeMessage(new IndexBatch({ records: [secret], initialDone: false })))
      for (let i = 0; i < 20; i++) {
        const stream = 1000 + i
        yield* channel.send(encodeMessage(new FileRequest({ stream, path: `d${i}/secret`, hash: secret.hash, blocks: [0] })))
        expect(yield* awaitStreamEnd(channel, stream)).toMatch(/no such file version/)
      }
      // and as small files, many to a request: none is served
      const files = Array.from({ length: 20 }, (_, i) => ({ path: `d${i}/secret`, hash: secret.hash }))
      yield* channel.send(encodeMessage(new FilesRequest({ stream: 2000, files })))
      expect(yield* awaitStreamEnd(channel, 2000)).toBeUndefined()
      expect(Option.isNone(yield* node.record("d0/secret"))).toBe(true)
      expect(snapshot()).toBe(before)
    }).pipe(Effect.scoped, Effect.provide(logs.layer))
  }, { timeout: 120_000 })

  it.live("files already behind a symlinked folder are never indexed nor served", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const { root, outside } = yield* folderWithOutside
      fs.symlinkSync(outside, path.join(root, "keys"))
      const network = makeNetwork()
      const node = yield* memoryNode(network, "a", root, [])
      const { channel, hasher } = yield* hostileClient(network)
      const secret = fileRecord("keys/secret", fs.readFileSync(path.join(outside, "secret")), hasher)
      // the record makes the node look at the path; it must not scan through the link
      yield* channel.send(encodeMessage(new IndexBatch({ records: [secret], initialDone: true })))
      // let the node take the record in (it asks for the file, as the path is new here: we
      // serve it, so only the rooted calls stand between it and the outside file), then ask for it
      const before = JSON.stringify(describeTree(outside))
      yield* serveFiles(channel, new Map([["keys/secret", fs.readFileSync(path.join(outside, "secret"))]]), { quietMs: 1_000 })
      expect(JSON.stringify(describeTree(outside))).toBe(before)
      yield* channel.send(encodeMessage(new FileRequest({ stream: 7, path: "keys/secret", hash: secret.hash, blocks: [0] })))
      expect(yield* awaitStreamEnd(channel, 7)).toMatch(/no such file version/)
      expect(Option.isNone(yield* node.record("keys/secret"))).toBe(true)
      expect(fs.lstatSync(path.join(root, "keys")).isSymbolicLink()).toBe(true)
      // the scan never even tried to enter the link
      expect(logs.lines.filter((l) => l.includes("cannot read folder"))).toEqual([])
    }).pipe(Effect.scoped, Effect.provide(logs.layer))
  }, { timeout: 30_000 })

  it("RootedFs: a folder swapped with a symlink thousands of times while files are created under it never lets a write out", async () => {
    const base = fs.realpathSync(fs.mkdtempSync(path.join(process.env.TMPDIR ?? "/tmp", "dsync-race-")))
    try {
      const root = path.join(base, "root")
      const outside = path.join(base, "outside")
      fs.mkdirSync(path.join(root, "d"), { recursive: true })
      fs.mkdirSync(outside)
      // another thread flips root/d between a real folder and a link to `outside`
      const worker = new Worker(
        `const fs = require("node:fs"); const { root, outside } = require("node:worker_threads").workerData
         const d = root + "/d", real = root + "/real", deadline = Date.now() + 3000
         for (let i = 0; i < 200000 && Date.now() < deadline; i++) {
           try { fs.renameSync(d, real); fs.symlinkSync(outside, d); fs.unlinkSync(d); fs.renameSync(real, d) } catch {}
         }`,
        { eval: true, workerData: { root, outside } }
      )
      const finished = new Promise((resolve) => worker.once("exit", resolve))
      const disk = new RootedFs(root)
      let written = 0
      const deadline = Date.now() + 2500
      for (let i = 0; i < 50_000 && Date.now() < deadline; i++) {
        try {
          // half in a batch (its folders held while it runs: a batch of small downloads), half in place
          fs.closeSync(i % 2 === 0 ? disk.createExclusive(`d/f${i}`, 0o600) : disk.batch(() => disk.createExclusive(`d/f${i}`, 0o600)))
          disk.rename(`d/f${i}`, `d/g${i}`)
          written++
        } catch { /* refused while d was a link, or raced away: fine */ }
        if (i % 200 === 0) await new Promise((r) => setImmediate(r))
      }
      await finished
      expect(written).toBeGreaterThan(100)
      expect(fs.readdirSync(outside)).toEqual([])
    } finally {
      fs.rmSync(base, { recursive: true, force: true })
    }
  }, 30_000)
})

describe("bounds: every number a peer sends", () => {
  it.live("special mode bits, absurd counters, huge vectors, claims on our counter and block sizes not tied to the size are refused one by one; the session goes on", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const root = yield* tempDir()
      const big = Buffer.alloc(16 * 1024 * 1024, 7)
      fs.writeFileSync(path.join(root, "big.bin"), big)
      const network = makeNetwork()
      const node = yield* memoryNode(network, "a", root, [])
      const { channel, hasher } = yield* hostileClient(network)
      const ok = Buffer.from("fine")
      const huge: Record<string, number> = {}
      for (let i = 0; i < 100; i++) huge[i.toString(16).padStart(16, "0")] = 1
      const blockHash = hasher.hash(big)
      const bad = [
        fileRecord("setuid.sh", ok, hasher, { mode: 0o4755 }),
        fileRecord("sticky.sh", ok, hasher, { mode: 0o1777 }),
        fileRecord("counter.txt", ok, hasher, { version: { [EVIL_REPLICA]: 2 ** 53 - 1 } }),
        fileRecord("vector.txt", ok, hasher, { version: huge }),
        fileRecord("ours.txt", ok, hasher, { version: { [node.replicaId]: 5 } }),
        // 128 copies of one local 16 MiB block: would make us write 2 GiB from nothing
        fileRecord("amplified.bin", "", hasher, {
          size: 128 * big.length,
          blockSize: big.length,
          blocks: Array(128).fill(blockHash),
          hash: fileHash(hasher, Array(128).fill(blockHash), 128 * big.length)
        })
      ]
      const good = fileRecord("good.sh", ok, hasher, { mode: 0o755 })
      yield* channel.send(encodeMessage(new IndexBatch({ records: [...bad, good], initialDone: true })))
      yield* serveFiles(channel, new Map([["good.sh", ok]]), { quietMs: 1_500 })
      yield* eventually("the good record applied", () => readOr(path.join(root, "good.sh")) === "fine")
      expect(fs.statSync(path.join(root, "good.sh")).mode & 0o7777).toBe(0o755)
      for (const r of bad) {
        expect(fs.existsSync(path.join(root, r.path)), r.path).toBe(false)
        expect(logs.lines.some((l) => l.includes("WARN") && l.includes("refused record") && l.includes(r.path)), r.path).toBe(true)
        expect(Option.isNone(yield* node.record(r.path))).toBe(true)
      }
      // the session still works: our next edit reaches the peer as an index record
      write(root, "after.txt", "still syncing")
      yield* eventually("the node still indexes and sends", () => logs.lines.some((l) => l.includes("after.txt")) || fs.existsSync(path.join(root, "after.txt")))
      const flowed = yield* Effect.flatMap(channel.receive, decodeFrame).pipe(
        Effect.repeat({ until: (f) => f._tag === "IndexBatch" && JSON.stringify(f.records).includes("after.txt"), times: 100 }),
        Effect.timeout("10 seconds")
      )
      expect(flowed._tag).toBe("IndexBatch")
      expect(partFilesIn(root)).toEqual([])
    }).pipe(Effect.scoped, Effect.provide(logs.layer))
  }, { timeout: 30_000 })
})

describe("bounded memory and fair sharing", () => {
  it.live("a peer that sends index records past its window without letting us apply them is dropped", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const root = yield* tempDir()
      const network = makeNetwork()
      yield* memoryNode(network, "a", root, [], { indexWindow: 200_000 })
      const { channel, hasher } = yield* hostileClient(network)
      // records the node wants but never gets (we answer no request): they stay pending
      const sent = yield* Effect.gen(function*() {
        for (let batch = 0; batch < 50; batch++) {
          const records = Array.from({ length: 200 }, (_, i) => fileRecord(`flood/${batch}-${i}.txt`, `x${batch}-${i}`, hasher))
          const result = yield* channel.send(encodeMessage(new IndexBatch({ records, initialDone: false }))).pipe(Effect.either)
          if (result._tag === "Left") return batch
          if (logs.lines.some((l) => l.includes("more index records than it was allowed"))) return batch
        }
        return 50
      })
      yield* eventually("the flood is refused", () => logs.lines.some((l) => l.includes("more index records than it was allowed")))
      expect(sent).toBeLessThan(50)
    }).pipe(Effect.scoped, Effect.provide(logs.layer))
  }, { timeout: 30_000 })

  it.live("an honest index far larger than the window still syncs whole, window by window", () =>
    Effect.gen(function*() {
      const a = yield* tempDir()
      const b = yield* tempDir()
      for (let i = 0; i < 300; i++) write(a, `many/f${i}.txt`, `file ${i}`)
      const network = makeNetwork()
      yield* memoryNode(network, "a", a, [], { indexWindow: 8_000 })
      yield* memoryNode(network, "b", b, ["a"], { indexWindow: 8_000 })
      yield* eventually("all 300 files arrived", () => fs.existsSync(path.join(b, "many")) && fs.readdirSync(path.join(b, "many")).filter((n) => n.endsWith(".txt")).length === 300, 60_000)
      expect(readOr(path.join(b, "many/f299.txt"))).toBe("file 299")
    }).pipe(Effect.scoped), { timeout: 90_000 })

  it.live("a peer serving slowly cannot hold the transfer slots: an honest peer's file still arrives", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const a = yield* tempDir()
      const b = yield* tempDir()
      const network = makeNetwork()
      yield* memoryNode(network, "a", a, [], { slowStreamWindow: "400 millis" })
      const { channel, hasher } = yield* hostileClient(network)
      // small files travel SMALL_BATCH to a slot: enough for all four slots, and more
      const records = Array.from({ length: 5 * SMALL_BATCH }, (_, i) => fileRecord(`slow${i}.bin`, `never sent ${i}`, hasher))
      yield* channel.send(encodeMessage(new IndexBatch({ records, initialDone: true })))
      // the slow peer now holds every slot; it reads our requests and never answers
      let requests = 0
      yield* Effect.forkScoped(Effect.forever(Effect.flatMap(channel.receive, decodeFrame).pipe(
        Effect.tap((f) => Effect.sync(() => void (requests += askedFiles(f).length)))
      )))
      yield* eventually("slots taken by the slow peer", () => requests >= 4 * SMALL_BATCH)
      write(b, "honest.txt", "from an honest peer")
      yield* memoryNode(network, "b", b, ["a"], { slowStreamWindow: "400 millis" })
      yield* eventually("the honest file arrived", () => readOr(path.join(a, "honest.txt")) === "from an honest peer", 8_000)
      expect(logs.lines.some((l) => l.includes("the peer sent too slowly"))).toBe(true)
    }).pipe(Effect.scoped, Effect.provide(logs.layer))
  }, { timeout: 30_000 })
})

describe("nothing lost", () => {
  it.live("a conflict never overwrites an existing file, even one named like its conflict copy", () =>
    Effect.gen(function*() {
      const root = yield* tempDir()
      write(root, "notes.txt", "ours")
      const network = makeNetwork()
      const node = yield* memoryNode(network, "a", root, [])
      // files already at the conflict copy's name for the coming seconds
      const now = Date.now()
      const taken = Array.from({ length: 15 }, (_, s) => conflictPath("notes.txt", new Date(now + s * 1000), node.replicaId))
      for (const name of taken) write(root, name, `precious ${name}`)
      const { channel, hasher } = yield* hostileClient(network)
      const theirs = Buffer.from("theirs")
      // concurrent with ours, and later: the peer's version wins, ours becomes a conflict copy
      yield* channel.send(encodeMessage(new IndexBatch({ records: [fileRecord("notes.txt", theirs, hasher, { mtimeMs: now + 3_600_000 })], initialDone: true })))
      yield* serveFiles(channel, new Map([["notes.txt", theirs]]), { quietMs: 1_500 })
      yield* eventually("the peer's version is in place", () => readOr(path.join(root, "notes.txt")) === "theirs")
      for (const name of taken) expect(readOr(path.join(root, name)), name).toBe(`precious ${name}`)
      const copies = fs.readdirSync(root).filter((n) => n.startsWith("notes.sync-conflict-") && readOr(path.join(root, n)) === "ours")
      expect(copies).toHaveLength(1)
      expect(copies[0]).toMatch(/~1\.txt$/)
    }).pipe(Effect.scoped), { timeout: 30_000 })
})

describe("safe logs", () => {
  it.live("names and paths from a peer reach the log escaped: no bidi override, line separator or control character", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const root = yield* tempDir()
      const network = makeNetwork()
      yield* memoryNode(network, "a", root, [])
      const { channel, hasher } = yield* hostileClient(network, { name: "admin\u202egnp.exe" })
      yield* channel.send(encodeMessage(new IndexBatch({
        records: [fileRecord("fake\u2028INFO connected.txt", "x", hasher, { mode: 0o4777 }), fileRecord("x\u0085y\u009b.txt", "x", hasher, { mode: 0o4777 })],
        initialDone: true
      })))
      // an accepted name with a bidi override: received, then deleted, both logged escaped
      const odd = fileRecord("note\u202etxt.exe", "x", hasher)
      yield* channel.send(encodeMessage(new IndexBatch({ records: [odd], initialDone: false })))
      yield* serveFiles(channel, new Map([[odd.path, Buffer.from("x")]]), { quietMs: 1_000 })
      yield* channel.send(encodeMessage(new IndexBatch({
        records: [{ ...odd, deleted: true, size: 0, hash: "", blocks: [], version: { [EVIL_REPLICA]: 2 } }],
        initialDone: false
      })))
      yield* eventually("received and deleted", () => logs.lines.some((l) => l.includes("deleted: \"note\\u202etxt.exe\"")))
      expect(logs.lines.some((l) => l.includes("received: \"note\\u202etxt.exe\""))).toBe(true)
      yield* eventually("both records refused", () => logs.lines.filter((l) => l.includes("refused record")).length >= 2)
      yield* eventually("peer connected", () => logs.lines.some((l) => l.includes("connected to admin\\u202egnp.exe")))
      expect(logs.lines.some((l) => l.includes("fake\\u2028INFO connected.txt"))).toBe(true)
      expect(logs.lines.some((l) => l.includes("x\\u0085y\\u009b.txt"))).toBe(true)
      expect(logs.lines.filter((l) => /[\u202e\u2028\u0085\u009b]/.test(l))).toEqual([])
    }).pipe(Effect.scoped, Effect.provide(logs.layer), logs.level)
  }, { timeout: 30_000 })
})

describe("tombstones stay few", () => {
  it.live("a peer's expired tombstones for paths we never had are not stored; stored ones carry no content and no future date", () =>
    Effect.gen(function*() {
      const root = yield* tempDir()
      const network = makeNetwork()
      const node = yield* memoryNode(network, "a", root, [])
      const { channel, hasher } = yield* hostileClient(network)
      const old = Date.now() - 100 * DAY
      const expired = Array.from({ length: 500 }, (_, i) =>
        fileRecord(`gone/${i}.txt`, "", hasher, { deleted: true, mtimeMs: old, blocks: [], size: 0 }))
      const future = symlinkRecord("future-link", "x".repeat(4000), hasher, { deleted: true, mtimeMs: Date.now() + 1e12 })
      yield* channel.send(encodeMessage(new IndexBatch({ records: [...expired, future], initialDone: true })))
      yield* eventually("the fresh tombstone is stored", () => Option.isSome(Effect.runSync(node.record("future-link"))))
      const stored = Option.getOrThrow(yield* node.record("future-link"))
      expect(stored.deleted).toBe(true)
      expect(stored.target).toBeUndefined()
      expect(stored.mtimeMs).toBeLessThanOrEqual(Date.now())
      for (const r of expired.slice(0, 50)) expect(Option.isNone(yield* node.record(r.path)), r.path).toBe(true)
    }).pipe(Effect.scoped), { timeout: 30_000 })

  it.live("tombstones older than the retention are dropped at start", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const root = yield* tempDir()
      write(root, "x.txt", "soon deleted")
      const network = makeNetwork()
      yield* Effect.scoped(Effect.gen(function*() {
        const node = yield* memoryNode(network, "a", root, [])
        fs.rmSync(path.join(root, "x.txt"))
        yield* eventually("deletion recorded", () => Effect.runSync(node.record("x.txt")).pipe(Option.map((r) => r.deleted), Option.getOrElse(() => false)))
      }))
      // the deletion happened 100 days ago
      const db = new Database(path.join(root, ".dsync", "index.db"))
      db.prepare("UPDATE files SET mtime_ms = ? WHERE path = 'x.txt'").run(Date.now() - 100 * DAY)
      db.close()
      const again = yield* memoryNode(network, "a2", root, [])
      yield* eventually("old tombstone dropped", () => logs.lines.some((l) => l.includes("forgot 1 deletions older than 90 days")))
      expect(Option.isNone(yield* again.record("x.txt"))).toBe(true)
    }).pipe(Effect.scoped, Effect.provide(logs.layer))
  }, { timeout: 30_000 })
})
