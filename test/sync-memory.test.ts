import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Option, Stream } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { FsError } from "../src/domain/Errors.js"
import * as WatcherParcel from "../src/layers/WatcherParcel.js"
import { Folder } from "../src/services/Folder.js"
import { Watcher } from "../src/services/Watcher.js"
import { cutAll, makeNetwork } from "../src/Testing.js"
import { eventually, readOr, tempDir } from "./support/fs.js"
import { captureLogs, memoryNode, sameTree, write } from "./support/nodes.js"
import { randomBytes } from "node:crypto"


describe("two nodes on an in-memory network", () => {
  it.live("converge from different starting folders, then sync live changes without echo", () =>
    Effect.gen(function*() {
      const a = yield* tempDir()
      const b = yield* tempDir()
      write(a, "only-a.txt", "from a")
      write(a, "nested/deep/x.txt", "x")
      write(b, "only-b.txt", "from b")
      write(b, "nested/y.txt", "y")
      fs.writeFileSync(path.join(a, "run.sh"), "#!/bin/sh\n", { mode: 0o755 })
      const network = makeNetwork()
      const nodeA = yield* memoryNode(network, "a", a, ["b"])
      const nodeB = yield* memoryNode(network, "b", b, [])

      yield* eventually("initial convergence", () => sameTree(a, b) && fs.existsSync(path.join(b, "only-a.txt")))
      expect(readOr(path.join(b, "nested/deep/x.txt"))).toBe("x")
      expect(readOr(path.join(a, "only-b.txt"))).toBe("from b")
      expect(fs.statSync(path.join(b, "run.sh")).mode & 0o777).toBe(0o755)
      expect(fs.statSync(path.join(b, "only-a.txt")).mtimeMs).toBeCloseTo(fs.statSync(path.join(a, "only-a.txt")).mtimeMs, -1)

      // live: create, modify, delete, rename, new dir
      write(a, "live/new.txt", "new")
      yield* eventually("create", () => readOr(path.join(b, "live/new.txt")) === "new")
      write(b, "only-a.txt", "modified on b")
      yield* eventually("modify", () => readOr(path.join(a, "only-a.txt")) === "modified on b")
      fs.unlinkSync(path.join(a, "only-b.txt"))
      yield* eventually("delete", () => !fs.existsSync(path.join(b, "only-b.txt")))
      fs.renameSync(path.join(b, "nested/y.txt"), path.join(b, "nested/z.txt"))
      yield* eventually("rename", () => !fs.existsSync(path.join(a, "nested/y.txt")) && readOr(path.join(a, "nested/z.txt")) === "y")
      fs.mkdirSync(path.join(a, "emptydir"))
      yield* eventually("new directory", () => fs.existsSync(path.join(b, "emptydir")))
      fs.rmSync(path.join(a, "nested/deep"), { recursive: true })
      yield* eventually("removed directory", () => !fs.existsSync(path.join(b, "nested/deep")))
      write(b, "docs/readme.md", "r")
      write(b, "docs/guide/intro.md", "i")
      yield* eventually("new tree", () => readOr(path.join(a, "docs/guide/intro.md")) === "i")
      // folders made in one go (mkdir -p) are watched too: a later edit inside them is seen
      write(b, "docs/guide/intro.md", "i2")
      yield* eventually("edit inside a new nested folder", () => readOr(path.join(a, "docs/guide/intro.md")) === "i2")
      fs.rmSync(path.join(b, "docs"), { recursive: true })
      yield* eventually("removed tree", () => !fs.existsSync(path.join(a, "docs")))
      yield* eventually("converged", () => sameTree(a, b))

      // deleted content is kept in the trash, not unlinked
      const trash = path.join(b, ".dsync", "trash")
      expect(fs.existsSync(trash)).toBe(true)

      // no echo: applying a remote change made no version of b's own
      const received = Option.getOrThrow(yield* nodeB.record("live/new.txt"))
      expect(Object.keys(received.version)).toEqual([nodeA.replicaId])
      expect(yield* nodeA.connectedPeers).toEqual([nodeB.peerId])
    }).pipe(Effect.scoped), { timeout: 60_000 })

  it.live("concurrent offline edits end as the same winner plus a conflict copy on both sides; offline deletes propagate", () =>
    Effect.gen(function*() {
      const a = yield* tempDir()
      const b = yield* tempDir()
      write(a, "doc.txt", "v1")
      write(a, "gone.txt", "delete me while offline")
      const network = makeNetwork()
      // phase 1: both online, converge
      yield* Effect.scoped(Effect.gen(function*() {
        yield* memoryNode(network, "a", a, ["b"])
        yield* memoryNode(network, "b", b, [])
        yield* eventually("first sync", () => readOr(path.join(b, "doc.txt")) === "v1" && fs.existsSync(path.join(b, "gone.txt")))
      }))
      // offline: both edit doc.txt (b's edit is later, so it wins), a deletes gone.txt
      write(a, "doc.txt", "edit from a", new Date(Date.now() - 60_000))
      write(b, "doc.txt", "edit from b", new Date())
      fs.unlinkSync(path.join(a, "gone.txt"))
      // phase 2: both back
      yield* memoryNode(network, "a", a, ["b"])
      const nodeB = yield* memoryNode(network, "b", b, [])
      const conflictCopy = (root: string) => fs.readdirSync(root).find((n) => n.startsWith("doc.sync-conflict-"))
      yield* eventually("conflict resolved on both sides", () =>
        readOr(path.join(a, "doc.txt")) === "edit from b" && readOr(path.join(b, "doc.txt")) === "edit from b" &&
        conflictCopy(a) !== undefined && conflictCopy(b) !== undefined && !fs.existsSync(path.join(b, "gone.txt")))
      expect(conflictCopy(a)).toBe(conflictCopy(b))
      expect(readOr(path.join(b, conflictCopy(b)!))).toBe("edit from a")
      expect(conflictCopy(a)!.endsWith(".txt")).toBe(true)
      // the delete made while dsync was stopped is not undone by the peer
      yield* eventually("converged", () => sameTree(a, b))
      expect(fs.existsSync(path.join(a, "gone.txt"))).toBe(false)
      expect(Option.getOrThrow(yield* nodeB.record("gone.txt")).deleted).toBe(true)
    }).pipe(Effect.scoped), { timeout: 60_000 })

  it.live("moves only the blocks that changed; a rename or copy moves none", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const a = yield* tempDir()
      const b = yield* tempDir()
      const big = randomBytes(8 * 128 * 1024) // 8 blocks
      fs.writeFileSync(path.join(a, "big.bin"), big)
      const network = makeNetwork()
      yield* memoryNode(network, "a", a, ["b"])
      yield* memoryNode(network, "b", b, [])
      const received = (p: string) => logs.lines.find((l) => l.includes(`received: ${p} (`))
      yield* eventually("initial copy", () => received("big.bin") !== undefined)
      expect(received("big.bin")).toContain("8 of 8 blocks from peer")

      fs.mkdirSync(path.join(a, "moved"))
      fs.renameSync(path.join(a, "big.bin"), path.join(a, "moved/big2.bin"))
      yield* eventually("rename", () => received("moved/big2.bin") !== undefined && !fs.existsSync(path.join(b, "big.bin")))
      expect(received("moved/big2.bin")).toContain("0 of 8 blocks from peer")

      const edited = Buffer.from(big)
      edited[5 * 128 * 1024 + 17] ^= 0xff
      fs.writeFileSync(path.join(a, "moved/big2.bin"), edited)
      yield* eventually("one-byte edit", () => logs.lines.filter((l) => l.includes("received: moved/big2.bin (")).length === 2)
      expect(logs.lines.filter((l) => l.includes("received: moved/big2.bin (")).at(-1)).toContain("1 of 8 blocks from peer")
      expect(fs.readFileSync(path.join(b, "moved/big2.bin")).equals(edited)).toBe(true)
    }).pipe(Effect.scoped, Effect.provide(logs.layer), logs.level)
  }, { timeout: 60_000 })

  it.live("reconnects after the connection drops, and catches up on what changed meanwhile", () =>
    Effect.gen(function*() {
      const a = yield* tempDir()
      const b = yield* tempDir()
      const network = makeNetwork()
      const nodeA = yield* memoryNode(network, "a", a, ["b"])
      yield* memoryNode(network, "b", b, [])
      write(a, "before.txt", "1")
      yield* eventually("first sync", () => readOr(path.join(b, "before.txt")) === "1")
      yield* cutAll(network)
      yield* eventually("disconnected", () => Effect.runSync(nodeA.connectedPeers).length === 0)
      write(a, "during.txt", "2")
      yield* eventually("reconnected and caught up", () => readOr(path.join(b, "during.txt")) === "2", 15_000)
    }).pipe(Effect.scoped), { timeout: 30_000 })

  it.live("syncs symlinks as links, never following them; a link cannot smuggle a write outside", () =>
    Effect.gen(function*() {
      const a = yield* tempDir()
      const b = yield* tempDir()
      const outside = yield* tempDir()
      write(a, "target.txt", "t")
      fs.symlinkSync("target.txt", path.join(a, "link.txt"))
      fs.symlinkSync(outside, path.join(a, "escape")) // a link to a folder outside the synced one
      const network = makeNetwork()
      yield* memoryNode(network, "a", a, ["b"])
      yield* memoryNode(network, "b", b, [])
      yield* eventually("links synced", () => {
        try {
          return fs.readlinkSync(path.join(b, "link.txt")) === "target.txt" && fs.readlinkSync(path.join(b, "escape")) === outside
        } catch {
          return false
        }
      })
      expect(fs.lstatSync(path.join(b, "escape")).isSymbolicLink()).toBe(true)
      // a file created "inside" the link on A's side is outside A's folder: never scanned, never sent
      write(a, "escape/secret.txt", "not synced")
      write(a, "after.txt", "marker")
      yield* eventually("later change synced", () => readOr(path.join(b, "after.txt")) === "marker")
      expect(fs.readdirSync(outside)).toEqual(["secret.txt"])
    }).pipe(Effect.scoped), { timeout: 30_000 })

  it.live("honours .dsyncignore, and applies an edited one without a restart", () =>
    Effect.gen(function*() {
      const a = yield* tempDir()
      const b = yield* tempDir()
      write(a, "keep.txt", "k")
      write(a, "debug.log", "not a default pattern: synced")
      write(a, "cache.tmp", "ignored by the default .dsyncignore")
      write(a, "node_modules/pkg/index.js", "ignored by default")
      const network = makeNetwork()
      yield* memoryNode(network, "a", a, ["b"])
      yield* memoryNode(network, "b", b, [])
      yield* eventually("first sync", () => readOr(path.join(b, "keep.txt")) === "k" && fs.existsSync(path.join(b, "debug.log")))
      expect(fs.existsSync(path.join(b, "cache.tmp"))).toBe(false)
      expect(fs.existsSync(path.join(b, "node_modules"))).toBe(false)
      expect(fs.existsSync(path.join(b, ".dsyncignore"))).toBe(true) // B made its own, with the defaults
      // A starts ignoring *.secret while running
      fs.appendFileSync(path.join(a, ".dsyncignore"), "\n*.secret\n")
      yield* Effect.sleep("300 millis")
      write(a, "key.secret", "do not sync")
      write(a, "after.txt", "marker")
      yield* eventually("later change synced", () => readOr(path.join(b, "after.txt")) === "marker")
      expect(fs.existsSync(path.join(b, "key.secret"))).toBe(false)
    }).pipe(Effect.scoped), { timeout: 30_000 })

  it.live("a watcher that fails is restarted, and what changed meanwhile is found by a rescan", () =>
    Effect.gen(function*() {
      const a = yield* tempDir()
      const b = yield* tempDir()
      // the first subscription fails at once; later ones are the real watcher
      let subscriptions = 0
      const flaky = Layer.effect(
        Watcher,
        Effect.map(Effect.provide(Watcher, WatcherParcel.layer), (real) => ({
          watch: (root: string) =>
            subscriptions++ === 0 ? Stream.fail(new FsError({ op: "watch", path: root, cause: "no inotify watches left" })) : real.watch(root)
        }))
      )
      const network = makeNetwork()
      yield* memoryNode(network, "a", a, ["b"], undefined, flaky)
      yield* memoryNode(network, "b", b, [])
      write(a, "made-while-blind.txt", "found")
      yield* eventually("synced after the restart", () => readOr(path.join(b, "made-while-blind.txt")) === "found")
      expect(subscriptions).toBeGreaterThanOrEqual(2)
      write(a, "later.txt", "live again")
      yield* eventually("live again", () => readOr(path.join(b, "later.txt")) === "live again")
    }).pipe(Effect.scoped), { timeout: 30_000 })

  it.live("a file saved while the first scan runs reaches the peer before that scan ends", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const a = yield* tempDir()
      const b = yield* tempDir()
      // a slow first scan: 300 files, each looked at for 20 ms (ignored, so only the saved file syncs)
      for (let i = 0; i < 300; i++) write(a, `slow/f${i}.txt`, "x")
      const slowScan = Layer.effect(
        Folder,
        Effect.map(Folder, (folder) => ({
          ...folder,
          isIgnored: (rel: string, isDir: boolean) =>
            rel.startsWith("slow/") && !isDir ? Effect.as(Effect.sleep("20 millis"), true) : folder.isIgnored(rel, isDir)
        }))
      )
      const network = makeNetwork()
      yield* memoryNode(network, "b", b, [])
      // (b's own scan, of nothing, logs "indexed 0 ...")
      const scanEnded = () => logs.lines.some((l) => /indexed [1-9]\d* files and folders/.test(l))
      yield* Effect.forkScoped(memoryNode(network, "a", a, ["b"], undefined, slowScan))
      yield* eventually("a to connect while it scans", () => logs.lines.some((l) => l.includes("connected to a")), 10_000)
      expect(scanEnded()).toBe(false)
      write(a, "saved.txt", "saved during the scan")
      yield* eventually("saved.txt at b", () => readOr(path.join(b, "saved.txt")) === "saved during the scan", 10_000)
      expect(scanEnded()).toBe(false)
      yield* eventually("the scan to end", scanEnded, 10_000)
    }).pipe(Effect.scoped, Effect.provide(logs.layer))
  }, { timeout: 30_000 })
})
