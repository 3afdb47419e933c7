import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope, Stream } from "effect"
import { randomBytes } from "node:crypto"
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

  describe("swarm: a large file comes from every peer that has it", () => {
    const MiB = 1024 * 1024
    /** a and b both hold big.bin (b got it from a); returns the nodes and the content. */
    const twoHolders = (network: ReturnType<typeof makeNetwork>, a: string, b: string, scopeB: Scope.Scope) =>
      Effect.gen(function*() {
        const nodeA = yield* memoryNode(network, "a", a, ["b"])
        const nodeB = yield* memoryNode(network, "b", b, ["a"]).pipe(Scope.extend(scopeB))
        const content = randomBytes(16 * MiB)
        fs.writeFileSync(path.join(a, "big.bin"), content)
        yield* eventually("b to hold big.bin", () => fs.existsSync(path.join(b, "big.bin")) && fs.readFileSync(path.join(b, "big.bin")).equals(content), 30_000)
        return { nodeA, nodeB, content }
      })
    const hasContent = (file: string, content: Buffer) => fs.existsSync(file) && fs.readFileSync(file).equals(content)

    it.live("a node joining later asks both holders for blocks", () =>
      Effect.gen(function*() {
        const [a, b, c] = [yield* tempDir(), yield* tempDir(), yield* tempDir()]
        const network = makeNetwork()
        const { nodeA, nodeB, content } = yield* twoHolders(network, a, b, yield* Effect.scope)
        const sent = { a: 0, b: 0 }
        for (const [name, node] of [["a", nodeA], ["b", nodeB]] as const) {
          yield* Effect.forkScoped(node.events.pipe(Stream.runForEach((e) =>
            Effect.sync(() => {
              if (e._tag === "FileSent" && e.path === "big.bin") sent[name] += e.bytes
            })
          )))
        }
        yield* Effect.sleep("50 millis") // subscribed
        // c receives at 8 MB/s: both sessions are up long before the file is half done
        yield* memoryNode(network, "c", c, ["a", "b"], { limits: { maxRecvRate: 8_000_000 } })
        yield* eventually("c to hold big.bin", () => hasContent(path.join(c, "big.bin"), content), 30_000)
        // each reports its part once no request has come for a moment
        yield* eventually("a and b to report their parts", () => sent.a > 0 && sent.b > 0 && sent.a + sent.b >= content.length, 10_000)
      }).pipe(Effect.scoped), { timeout: 90_000 })

    it.live("a holder that stops mid-file: the download goes on with the other", () =>
      Effect.gen(function*() {
        const [a, b, c] = [yield* tempDir(), yield* tempDir(), yield* tempDir()]
        const network = makeNetwork()
        const scopeB = yield* Scope.make()
        const { content } = yield* twoHolders(network, a, b, scopeB)
        const nodeC = yield* memoryNode(network, "c", c, ["a", "b"], { limits: { maxRecvRate: 8_000_000 } })
        // b stops with a third of the file at c: both were asked for blocks by then (the test above)
        yield* nodeC.events.pipe(
          Stream.filter((e) => e._tag === "TransferProgress" && e.path === "big.bin" && e.received > 5 * MiB),
          Stream.take(1),
          Stream.runDrain,
          Effect.timeout("30 seconds")
        )
        yield* Scope.close(scopeB, Exit.void)
        expect(hasContent(path.join(c, "big.bin"), content)).toBe(false)
        yield* eventually("c to hold big.bin", () => hasContent(path.join(c, "big.bin"), content), 30_000)
      }).pipe(Effect.scoped), { timeout: 90_000 })
  })
})
