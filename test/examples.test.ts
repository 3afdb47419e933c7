// The programs in examples/ run as tests: they are what an app embedding dsync writes.
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { program as embedRealNode } from "../examples/embed-real-node.js"
import { program as memorySync } from "../examples/memory-sync.js"
import { tempDir } from "./support/fs.js"

describe("examples", () => {
  it.live("memory-sync: two nodes in one process, a file written in one appears in the other", () =>
    Effect.gen(function*() {
      expect(yield* memorySync(yield* tempDir(), yield* tempDir())).toBe("hello from A")
    }).pipe(Effect.scoped), { timeout: 30_000 })

  it.live("embed-real-node: an app reacts to a real node's events (TCP on 127.0.0.1)", () =>
    Effect.gen(function*() {
      expect(yield* embedRealNode(yield* tempDir(), yield* tempDir())).toEqual(["one.txt", "two.txt"])
    }).pipe(Effect.scoped), { timeout: 30_000 })
})
