import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Logger, LogLevel } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { startNode } from "../src/programs/SyncNode.js"
import { makeNetwork, memoryNodeLayer, type MemoryNetwork } from "../src/Testing.js"
import { eventually, readOr, snapshot, tempDir } from "./support/fs.js"

const PORT = 9000

/** Start a node on the memory network in `root`, dialling `peers` (host names). */
const node = (network: MemoryNetwork, host: string, root: string, peers: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    // built in the caller's scope: the node's services live as long as the test
    const services = yield* Layer.build(memoryNodeLayer({ network, host, root, peers: peers.map((h) => ({ host: h, port: PORT })) }))
    return yield* Effect.provide(startNode({ name: host, listen: { host, port: PORT }, maxConcurrentTransfers: 4 }), services)
  })

const write = (root: string, rel: string, content: string) => {
  fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true })
  fs.writeFileSync(path.join(root, rel), content)
}

const same = (a: string, b: string) => JSON.stringify(snapshot(a)) === JSON.stringify(snapshot(b))

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
      const nodeA = yield* node(network, "a", a, ["b"])
      yield* node(network, "b", b, [])

      yield* eventually("initial convergence", () => same(a, b) && fs.existsSync(path.join(b, "only-a.txt")))
      expect(snapshot(b)["nested/deep/x.txt"]).toBe("x")
      expect(snapshot(a)["only-b.txt"]).toBe("from b")
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
      yield* eventually("converged", () => same(a, b))

      // deleted content is kept in the trash, not unlinked
      const trash = path.join(b, ".dsync", "trash")
      expect(fs.existsSync(trash)).toBe(true)

      // no echo: applying remote changes made no new local versions on b
      expect(yield* nodeA.connectedPeers).toHaveLength(1)
    }).pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Debug)), { timeout: 60_000 })
})
