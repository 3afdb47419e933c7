import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { cutAll, makeNetwork } from "../src/Testing.js"
import { eventually, readOr, tempDir } from "./support/fs.js"
import { captureLogs, memoryNode, sameTree, write } from "./support/nodes.js"

const FILES = Number(process.env.DSYNC_RECONNECT_FILES ?? 300)

/** Record counts of every "sent our index" line logged since `from`. */
const indexSends = (lines: ReadonlyArray<string>, from = 0) =>
  lines.slice(from).flatMap((l) => {
    const m = /sent our index: (\d+) records after sequence (\d+)/.exec(l)
    return m ? [{ records: Number(m[1]), after: Number(m[2]) }] : []
  })

describe("reconnect", () => {
  it.live("a peer sends only the records changed since what the other side last took; a reset index gets everything", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const a = yield* tempDir()
      const b = yield* tempDir()
      for (let i = 0; i < FILES; i++) write(a, `d${i % 10}/f${i}.txt`, `file ${i}`)
      const network = makeNetwork()
      yield* memoryNode(network, "a", a, ["b"])
      const scopeB = yield* Scope.make()
      yield* memoryNode(network, "b", b, []).pipe(Scope.extend(scopeB))
      yield* eventually("first sync", () => sameTree(a, b), 30_000 + FILES * 50)
      // the first exchange is whole: each side had nothing of the other
      expect(indexSends(logs.lines).some((s) => s.records >= FILES && s.after === 0)).toBe(true)

      // a blip: every connection drops, one file changes meanwhile
      let mark = logs.lines.length
      yield* cutAll(network)
      write(a, "d1/f1.txt", "changed during the blip")
      yield* eventually("the change after the blip", () => readOr(path.join(b, "d1/f1.txt")) === "changed during the blip", 30_000)
      yield* eventually("both sides sent their index again", () => indexSends(logs.lines, mark).length >= 2)
      const again = indexSends(logs.lines, mark)
      expect(again.every((s) => s.records <= 3 && s.after > 0)).toBe(true)

      // b loses its .dsync/ (a new replica): it asks for everything, and gets it
      yield* Scope.close(scopeB, Exit.void)
      fs.rmSync(path.join(b, ".dsync"), { recursive: true, force: true })
      mark = logs.lines.length
      yield* memoryNode(network, "b", b, [])
      yield* eventually("a sends its whole index to the new replica", () =>
        indexSends(logs.lines, mark).some((s) => s.records >= FILES && s.after === 0), 30_000 + FILES * 10)
      yield* eventually("still in sync", () => sameTree(a, b), 30_000 + FILES * 10)
    }).pipe(Effect.scoped, Effect.provide(logs.layer), logs.level)
  }, { timeout: 60_000 + FILES * 100 })

  it.live("a node that stops says goodbye: its peer ends the session at once and logs who left", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const a = yield* tempDir()
      const b = yield* tempDir()
      const network = makeNetwork()
      yield* memoryNode(network, "a", a, ["b"])
      const scopeB = yield* Scope.make()
      yield* memoryNode(network, "b", b, []).pipe(Scope.extend(scopeB))
      yield* eventually("connected", () => logs.lines.some((l) => /connected to b \(\w+\) at b:/.test(l)))
      const started = Date.now()
      yield* Scope.close(scopeB, Exit.void)
      yield* eventually("a saw b leave", () => logs.lines.some((l) => /disconnected from b \(\w+\) at b:\d+: the peer left/.test(l)), 5_000)
      expect(Date.now() - started).toBeLessThan(5_000)
    }).pipe(Effect.scoped, Effect.provide(logs.layer), logs.level)
  }, { timeout: 60_000 })
})
