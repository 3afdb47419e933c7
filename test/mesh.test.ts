import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { makeNetwork } from "../src/Testing.js"
import { eventually, readOr, tempDir } from "./support/fs.js"
import { captureLogs, memoryNode, sameTree, write } from "./support/nodes.js"

describe("a mesh of three", () => {
  it.live("in a line (a - b - c, a and c cannot talk), a change on either end reaches the other through b", () =>
    Effect.gen(function*() {
      const [a, b, c] = [yield* tempDir(), yield* tempDir(), yield* tempDir()]
      const network = makeNetwork()
      yield* memoryNode(network, "a", a, ["b"])
      yield* memoryNode(network, "b", b, [])
      yield* memoryNode(network, "c", c, ["b"])
      write(a, "from-a.txt", "written on a")
      yield* eventually("a's file reaches c", () => readOr(path.join(c, "from-a.txt")) === "written on a", 20_000)
      write(c, "from-c.txt", "written on c")
      yield* eventually("c's file reaches a", () => readOr(path.join(a, "from-c.txt")) === "written on c", 20_000)
      fs.unlinkSync(path.join(a, "from-c.txt"))
      yield* eventually("a's delete reaches c", () => !fs.existsSync(path.join(c, "from-c.txt")), 20_000)
      yield* eventually("one tree", () => sameTree(a, b) && sameTree(b, c))
    }).pipe(Effect.scoped), { timeout: 90_000 })

  it.live("all connected: a change on any reaches all, and each file is received once per node", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const roots = [yield* tempDir(), yield* tempDir(), yield* tempDir()]
      const hosts = ["a", "b", "c"]
      const network = makeNetwork()
      yield* Effect.forEach(hosts, (h, i) => memoryNode(network, h, roots[i]!, hosts.filter((o) => o !== h)), { discard: true })
      for (const [i, root] of roots.entries()) {
        write(root, `new-${i}.txt`, `made on ${hosts[i]}`)
        yield* eventually(`new-${i}.txt everywhere`, () => roots.every((r) => readOr(path.join(r, `new-${i}.txt`)) === `made on ${hosts[i]}`), 20_000)
      }
      yield* eventually("one tree", () => sameTree(roots[0]!, roots[1]!) && sameTree(roots[1]!, roots[2]!))
      // each node received each of the others' files once: 2 files x 3 nodes = 6 lines
      const received = logs.lines.filter((l) => /received: new-\d\.txt/.test(l))
      expect(received.length).toBe(6)
    }).pipe(Effect.scoped, Effect.provide(logs.layer))
  }, { timeout: 90_000 })
})
