import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Stream, TestClock } from "effect"
import { makeRecheck } from "../src/programs/Recheck.js"
import * as fs from "node:fs"
import * as path from "node:path"
import { makeNetwork } from "../src/Testing.js"
import { Watcher } from "../src/services/Watcher.js"
import { eventually, readOr, tempDir } from "./support/fs.js"
import { memoryNode, write } from "./support/nodes.js"

/** A watcher that is in place and never reports anything: as if every event were folded away. */
const silentWatcher = Layer.succeed(Watcher, { watch: () => Stream.concat(Stream.make([]), Stream.never) })

describe("a local change right after a peer's write", () => {
  it.live("is not lost when the watcher never reports it: the written path is looked at again", () =>
    Effect.gen(function*() {
      const a = yield* tempDir()
      const b = yield* tempDir()
      const network = makeNetwork()
      yield* memoryNode(network, "a", a, ["b"])
      yield* memoryNode(network, "b", b, [], undefined, silentWatcher)
      write(a, "arrives.txt", "from a")
      // b's user deletes the file the moment it arrives
      yield* eventually("the file reaches b", () => fs.existsSync(path.join(b, "arrives.txt")), 20_000)
      fs.unlinkSync(path.join(b, "arrives.txt"))
      yield* eventually("the deletion reaches a", () => !fs.existsSync(path.join(a, "arrives.txt")), 10_000)
      expect(readOr(path.join(b, "arrives.txt"))).toBe("<missing>")
    }).pipe(Effect.scoped), { timeout: 60_000 })
})

describe("the recheck of written paths", () => {
  it.live("holds a path as pending until it has been looked at again, so its watcher event can be left to it", () =>
    Effect.gen(function*() {
      const checked: Array<ReadonlyArray<string>> = []
      const recheck = yield* makeRecheck((paths) => Effect.sync(() => void checked.push(paths)))
      expect(recheck.pending("a.txt")).toBe(false)
      yield* recheck.add("a.txt")
      yield* recheck.add("dir/b.txt")
      expect(recheck.pending("a.txt")).toBe(true)
      expect(recheck.pending("dir/b.txt")).toBe(true)
      expect(recheck.pending("c.txt")).toBe(false)
      yield* eventually("the recheck runs", () => checked.length > 0, 5_000)
      expect(checked).toEqual([["a.txt", "dir/b.txt"]])
      expect(recheck.pending("a.txt")).toBe(false) // an event from now on is scanned at once
    }).pipe(Effect.scoped))
  it.live("holds paths being written as pending from the start of the write, and rechecks them after it", () =>
    Effect.gen(function*() {
      const checked: Array<ReadonlyArray<string>> = []
      const recheck = yield* makeRecheck((paths) => Effect.sync(() => void checked.push(paths)))
      const during = yield* recheck.writing(["x.txt", "y.txt"])(
        Effect.sync(() => [recheck.pending("x.txt"), recheck.pending("y.txt"), recheck.pending("z.txt")])
      )
      expect(during).toEqual([true, true, false])
      expect(recheck.pending("x.txt")).toBe(true) // written: its recheck is due
      yield* eventually("the recheck runs", () => checked.length > 0, 5_000)
      expect(checked).toEqual([["x.txt", "y.txt"]])
      expect(recheck.pending("x.txt")).toBe(false)
      // a write that fails is rechecked all the same (a skipped event may have been a user's)
      yield* recheck.writing(["w.txt"])(Effect.fail("disk full")).pipe(Effect.ignore)
      expect(recheck.pending("w.txt")).toBe(true)
    }).pipe(Effect.scoped))
  it.effect("looks at each path no sooner than its own delay after it was written, not its batch's first", () =>
    Effect.gen(function*() {
      const checked: Array<ReadonlyArray<string>> = []
      const recheck = yield* makeRecheck((paths) => Effect.sync(() => void checked.push(paths)))
      yield* recheck.add("first.txt")
      yield* TestClock.adjust("700 millis")
      // written 700 ms after the first: a user's delete 30 ms after this write may be folded
      // by the watcher into the write's event, so a look at 750 ms would miss it
      yield* recheck.add("late.txt")
      yield* TestClock.adjust("110 millis")
      expect(checked).toEqual([["first.txt"]])
      expect(recheck.pending("late.txt")).toBe(true)
      yield* TestClock.adjust("680 millis")
      expect(checked).toEqual([["first.txt"]])
      yield* TestClock.adjust("20 millis")
      expect(checked).toEqual([["first.txt"], ["late.txt"]])
      expect(recheck.pending("late.txt")).toBe(false)
      // added again while due: its delay starts over
      yield* recheck.add("again.txt")
      yield* TestClock.adjust("500 millis")
      yield* recheck.add("again.txt")
      yield* TestClock.adjust("400 millis")
      expect(checked.length).toBe(2)
      yield* TestClock.adjust("400 millis")
      expect(checked).toEqual([["first.txt"], ["late.txt"], ["again.txt"]])
    }).pipe(Effect.scoped))
})
