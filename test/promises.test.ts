// README promises checked through running nodes: each test here fails when the promise
// it names is broken in the source (trash retention, trash copies, symlinks not followed,
// stale .part cleanup, max_concurrent_transfers, the encrypted frame cap).
import { describe, expect, it } from "@effect/vitest"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { Effect, Option } from "effect"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { IndexBatch } from "../src/domain/Messages.js"
import * as TransportTcp from "../src/layers/TransportTcp.js"
import { runNode } from "../src/Live.js"
import { frameHeader } from "../src/lib/Framing.js"
import { decodeFrame, encodeMessage } from "../src/lib/Wire.js"
import { loadConfigFile, resolveConfig } from "../src/programs/ResolveConfig.js"
import type { Channel } from "../src/services/SecureChannel.js"
import type { HasherApi } from "../src/services/Hasher.js"
import { makeNetwork } from "../src/Testing.js"
import { describeTree, eventually, partFilesIn, readOr, tempDir, walkTree } from "./support/fs.js"
import { fileRecord, hostileClient } from "./support/hostile.js"
import { captureLogs, memoryNode, write } from "./support/nodes.js"
import { freePorts } from "./support/proc.js"

const DAY = 86_400_000

/** A trash folder name for time `d`, in Trash.ts's format (UTC `YYYYMMDD-HHMMSS`). */
const trashStamp = (d: Date) => d.toISOString().replace(/[-:]/g, "").replace(/\..*$/, "").replace("T", "-")

/** Every regular file under `dir` (not following symlinks, folders at most 32 deep). */
const filesUnder = (dir: string): Array<string> => {
  const out: Array<string> = []
  walkTree(dir, (entry, abs, rel) => {
    if (entry.isFile()) out.push(abs)
    return rel.split("/").length <= 32
  })
  return out
}

/** Files in `root`'s trash whose bytes are exactly `content`. */
const inTrash = (root: string, content: Buffer) =>
  filesUnder(path.join(root, ".dsync", "trash")).filter((f) => {
    try {
      return fs.readFileSync(f).equals(content)
    } catch {
      return false
    }
  })

const record = (p: string, content: string, hasher: HasherApi) => fileRecord(p, content, hasher, { blockSize: 131072 })

/**
 * Announce 20 files the node lacks, never answer, and count the FileRequests that come:
 * reading stops 1.5 s after the last frame (the node's request timeout is 30 s, so nothing
 * is retried meanwhile), or at 10 s, or after 200 frames.
 */
const countFileRequests = (channel: Channel, hasher: HasherApi) =>
  Effect.gen(function*() {
    // two blocks each (small files travel in batches: a slot per batch, see the puller tests)
    const records = Array.from({ length: 20 }, (_, i) => record(`f${i}.txt`, `file ${i} ${randomBytes(8).toString("hex")} `.repeat(8000), hasher))
    yield* channel.send(encodeMessage(new IndexBatch({ records, initialDone: true })))
    const paths = new Set<string>()
    let count = 0
    const deadline = Date.now() + 10_000
    for (let frames = 0; frames < 200 && Date.now() < deadline; frames++) {
      const frame = yield* Effect.flatMap(channel.receive, decodeFrame).pipe(
        Effect.timeout(count === 0 ? "5 seconds" : "1500 millis"),
        Effect.option
      )
      if (Option.isNone(frame)) break
      if (frame.value._tag === "FileRequest") {
        count++
        paths.add(frame.value.path)
      }
    }
    return { count, paths }
  })

describe("README promises, through running nodes", () => {
  it.live("nothing lost: content a peer overwrites or deletes is kept in .dsync/trash", () =>
    Effect.gen(function*() {
      const a = yield* tempDir()
      const b = yield* tempDir()
      const oldDoc = Buffer.from(`old doc ${randomBytes(16).toString("hex")}`)
      const newDoc = Buffer.from(`new doc ${randomBytes(16).toString("hex")}`)
      const doomed = Buffer.from(`deleted by a peer ${randomBytes(16).toString("hex")}`)
      fs.writeFileSync(path.join(a, "doc.txt"), oldDoc)
      write(a, "dir/doomed.txt", doomed.toString())
      const network = makeNetwork()
      yield* memoryNode(network, "a", a, ["b"])
      yield* memoryNode(network, "b", b, [])
      yield* eventually("first sync", () =>
        readOr(path.join(b, "doc.txt")) === oldDoc.toString() && readOr(path.join(b, "dir/doomed.txt")) === doomed.toString())
      expect(inTrash(b, oldDoc)).toEqual([])

      // a newer version from A replaces B's copy: B keeps the old bytes in its trash
      fs.writeFileSync(path.join(a, "doc.txt"), newDoc)
      yield* eventually("overwrite synced", () => readOr(path.join(b, "doc.txt")) === newDoc.toString())
      expect(inTrash(b, oldDoc).length).toBeGreaterThan(0)
      expect(inTrash(b, oldDoc)[0]!.startsWith(path.join(b, ".dsync", "trash") + path.sep)).toBe(true)

      // A deletes a file: B moves it to the trash instead of unlinking it
      fs.unlinkSync(path.join(a, "dir/doomed.txt"))
      yield* eventually("delete synced", () => !fs.existsSync(path.join(b, "dir/doomed.txt")))
      expect(inTrash(b, doomed).length).toBeGreaterThan(0)
    }).pipe(Effect.scoped), { timeout: 60_000 })

  it.live("the trash survives a restart; only entries older than 30 days are purged at start", () =>
    Effect.gen(function*() {
      const a = yield* tempDir()
      const b = yield* tempDir()
      const oldDoc = Buffer.from(`old doc ${randomBytes(16).toString("hex")}`)
      const newDoc = Buffer.from(`new doc ${randomBytes(16).toString("hex")}`)
      fs.writeFileSync(path.join(a, "doc.txt"), oldDoc)
      const network = makeNetwork()
      // first run: A overwrites B's doc.txt, so its old content goes to B's trash
      yield* Effect.scoped(Effect.gen(function*() {
        yield* memoryNode(network, "a", a, ["b"])
        yield* memoryNode(network, "b", b, [])
        yield* eventually("first sync", () => readOr(path.join(b, "doc.txt")) === oldDoc.toString())
        fs.writeFileSync(path.join(a, "doc.txt"), newDoc)
        yield* eventually("overwrite synced", () => readOr(path.join(b, "doc.txt")) === newDoc.toString())
        yield* eventually("old content in the trash", () => inTrash(b, oldDoc).length > 0)
      }))
      // the restart comes in a later second than the trash entry, so even a zero retention would purge it
      const entry = path.relative(path.join(b, ".dsync", "trash"), inTrash(b, oldDoc)[0]!).split(path.sep)[0]!
      expect(entry).toMatch(/^\d{8}-\d{6}$/)
      yield* eventually("a later second", () => trashStamp(new Date()) > entry, 3_000)

      // while B is stopped: trash entries of 40 days ago (expired) and 29 days ago (not yet)
      const trash = path.join(b, ".dsync", "trash")
      const expired = trashStamp(new Date(Date.now() - 40 * DAY))
      const young = trashStamp(new Date(Date.now() - 29 * DAY))
      write(trash, `${expired}/ancient.txt`, "expired")
      write(trash, `${young}/notyet.txt`, "29 days old")

      // second run of B on the same folder
      yield* memoryNode(network, "b", b, [])
      yield* eventually("the expired entry is purged at start", () => !fs.existsSync(path.join(trash, expired)), 5_000)
      expect(inTrash(b, oldDoc).length).toBeGreaterThan(0)
      expect(readOr(path.join(trash, young, "notyet.txt"))).toBe("29 days old")
      expect(readOr(path.join(b, "doc.txt"))).toBe(newDoc.toString())
    }).pipe(Effect.scoped), { timeout: 60_000 })

  it.live("symlinks to folders are never followed: files already behind the link are not indexed or synced", () =>
    Effect.gen(function*() {
      const a = yield* tempDir()
      const b = yield* tempDir()
      const outside = yield* tempDir()
      // the outside folder holds a file BEFORE the node starts, so the initial scan would see it
      write(outside, "secret.txt", "outside the synced folder")
      write(outside, "deeper/more.txt", "also outside")
      fs.symlinkSync(outside, path.join(a, "link"))
      fs.mkdirSync(path.join(a, "nested"))
      fs.symlinkSync(outside, path.join(a, "nested/link2"))
      write(a, "marker.txt", "m")
      const network = makeNetwork()
      const behindLinks = ["link/secret.txt", "link/deeper", "link/deeper/more.txt", "nested/link2/secret.txt", "nested/link2/deeper/more.txt"]
      const nodeA = yield* memoryNode(network, "a", a, ["b"])
      // the initial scan is done once the node has started
      for (const p of behindLinks) expect(Option.isNone(yield* nodeA.record(p)), `A indexed ${p}`).toBe(true)
      const nodeB = yield* memoryNode(network, "b", b, [])
      const isLinkTo = (p: string, target: string) => {
        try {
          return fs.lstatSync(p).isSymbolicLink() && fs.readlinkSync(p) === target
        } catch {
          return false
        }
      }
      yield* eventually("marker synced", () => readOr(path.join(b, "marker.txt")) === "m")
      yield* eventually("links synced as links", () =>
        isLinkTo(path.join(b, "link"), outside) && isLinkTo(path.join(b, "nested/link2"), outside), 5_000)
      for (const p of behindLinks) {
        expect(Option.isNone(yield* nodeA.record(p)), `A indexed ${p}`).toBe(true)
        expect(Option.isNone(yield* nodeB.record(p)), `B received ${p}`).toBe(true)
      }
      // B's tree, without following links: the links are links, nothing sits "inside" them
      const treeB = describeTree(b, { hash: false })
      expect(treeB["link"]).toEqual({ kind: "symlink", target: outside })
      expect(Object.keys(treeB).filter((p) => p.startsWith("link/") || p.startsWith("nested/link2/"))).toEqual([])
      // and nothing was written into the outside folder
      expect(describeTree(outside, { hash: false })).toEqual({
        "deeper": { kind: "dir" },
        "deeper/more.txt": expect.objectContaining({ kind: "file", size: "also outside".length }),
        "secret.txt": expect.objectContaining({ kind: "file", size: "outside the synced folder".length })
      })
    }).pipe(Effect.scoped), { timeout: 30_000 })

  it.live("stale .part files left by a previous run are removed at start and never reach a peer", () =>
    Effect.gen(function*() {
      const a = yield* tempDir()
      const b = yield* tempDir()
      const stale = ".dsync-0123abcd-89abcdef.part"
      write(a, stale, "half a download")
      write(a, `sub/${stale}`, "another half")
      write(a, "sub/keep.txt", "k")
      const network = makeNetwork()
      yield* memoryNode(network, "a", a, ["b"])
      yield* eventually("stale part files removed at start", () =>
        !fs.existsSync(path.join(a, stale)) && !fs.existsSync(path.join(a, "sub", stale)), 5_000)
      yield* memoryNode(network, "b", b, [])
      yield* eventually("synced", () => readOr(path.join(b, "sub/keep.txt")) === "k")
      expect(partFilesIn(b)).toEqual([])
      expect(fs.existsSync(path.join(a, stale))).toBe(false)
      expect(fs.existsSync(path.join(a, "sub", stale))).toBe(false)
    }).pipe(Effect.scoped), { timeout: 30_000 })

  it.live("at most max_concurrent_transfers (4 here) large files are requested at once from a peer that never answers", () =>
    Effect.gen(function*() {
      const a = yield* tempDir()
      const network = makeNetwork()
      yield* memoryNode(network, "a", a, []) // maxConcurrentTransfers: 4
      const { channel, hasher } = yield* hostileClient(network)
      const requests = yield* countFileRequests(channel, hasher)
      expect(requests.count).toBeGreaterThanOrEqual(1)
      expect(requests.count).toBeLessThanOrEqual(4)
      expect(requests.paths.size).toBe(requests.count)
      expect(fs.readdirSync(a).filter((n) => n.startsWith("f"))).toEqual([])
    }).pipe(Effect.scoped), { timeout: 30_000 })

  it.live("max_concurrent_transfers from dsync.toml bounds the large files requested at once (runNode over TCP)", () =>
    Effect.gen(function*() {
      const a = yield* tempDir()
      const home = yield* tempDir()
      const [port] = yield* Effect.promise(() => freePorts(1))
      const toml = path.join(home, "dsync.toml")
      fs.writeFileSync(toml, "max_concurrent_transfers = 3\n")
      // the CLI's path: config file, flags, resolved config, runNode (the real layers)
      const config = yield* loadConfigFile(toml, true).pipe(
        Effect.flatMap((file) =>
          resolveConfig({ path: a, port: String(port), noDiscovery: true }, file, { cwd: a, homedir: home })),
        Effect.provide(NodeFileSystem.layer)
      )
      expect(config.maxConcurrentTransfers).toBe(3)
      yield* Effect.forkScoped(runNode({ ...config, host: "127.0.0.1" }))
      const { channel, hasher } = yield* hostileClient(undefined, {
        address: { host: "127.0.0.1", port: port! },
        transportLayer: TransportTcp.layer
      })
      const requests = yield* countFileRequests(channel, hasher)
      expect(requests.count).toBeGreaterThanOrEqual(1)
      expect(requests.count).toBeLessThanOrEqual(3)
    }).pipe(Effect.scoped), { timeout: 30_000 })

  it.live("an encrypted frame announcing more than the size cap is refused on its header", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const a = yield* tempDir()
      const network = makeNetwork()
      yield* memoryNode(network, "a", a, [])
      const { connection } = yield* hostileClient(network)
      // After a real handshake and hello: a frame header announcing 64 MiB (a data frame
      // carries one block of at most 16 MiB plus headers), followed by only a few bytes.
      // The rest never comes: a node that waited for the whole frame would never answer.
      const announced = 64 * 1024 * 1024
      yield* connection.write(frameHeader(announced), randomBytes(64))
      yield* eventually("connection refused with a size reason", () =>
        logs.lines.some((l) => l.includes(`frame of ${announced} bytes`) && l.includes("exceeds the limit")), 5_000)
      // the node closed the connection: our side sees end of stream (after any frames sent before)
      const closed = yield* Effect.gen(function*() {
        for (let chunks = 0; chunks < 1000; chunks++) {
          const read = yield* Effect.either(connection.read)
          if (read._tag === "Left") return true
        }
        return false
      }).pipe(Effect.timeout("5 seconds"), Effect.orElseSucceed(() => false))
      expect(closed).toBe(true)
    }).pipe(Effect.scoped, Effect.provide(logs.layer), logs.level)
  }, { timeout: 30_000 })
})
