import { describe, expect, it } from "@effect/vitest"
import { Chunk, Duration, Effect, Fiber, Queue, Stream } from "effect"
import { appendFile, mkdir, mkdtemp, realpath, rename, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { layer as WatcherParcel } from "../src/layers/WatcherParcel.js"
import { RESCAN_ALL, Watcher } from "../src/services/Watcher.js"

const WAIT = Duration.seconds(5)

/** A temp folder, removed when the test's scope closes. */
const tempDir = Effect.acquireRelease(
  Effect.promise(async () => realpath(await mkdtemp(join(tmpdir(), "dsync-watch-")))),
  (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
)

/**
 * Watch `root` in a background fiber; returns `seen` (every path reported so far) and
 * `until(paths)`, which waits (bounded) until all `paths` were reported since the last call.
 * It first waits for a probe file so the subscription is known to be live.
 */
const watching = (root: string) =>
  Effect.gen(function*() {
    const watcher = yield* Watcher
    const batches = yield* Queue.unbounded<ReadonlyArray<string>>()
    yield* watcher.watch(root).pipe(Stream.runForEach((b) => Queue.offer(batches, b)), Effect.forkScoped)
    let seen = new Set<string>()
    const until = (paths: ReadonlyArray<string>) =>
      Effect.gen(function*() {
        while (!paths.every((p) => seen.has(p))) {
          for (const p of yield* Queue.take(batches)) seen.add(p)
        }
        const found = seen
        seen = new Set()
        return found
      }).pipe(Effect.timeoutFail({ duration: WAIT, onTimeout: () => new Error(`no event for ${paths} in ${root}`) }))

    // The subscription starts asynchronously: touch a probe until it is reported.
    yield* Effect.gen(function*() {
      yield* Effect.promise(() => writeFile(join(root, "probe"), String(Date.now())))
      yield* until(["probe"]).pipe(Effect.timeout(Duration.millis(300)))
    }).pipe(Effect.retry({ times: 15 }))
    yield* Effect.promise(() => rm(join(root, "probe")))
    yield* until(["probe"])
    return { until }
  })

const fs = <A>(f: () => Promise<A>) => Effect.promise(f)

describe("WatcherParcel", () => {
  it.scopedLive("reports create, modify, rename, delete and nested new dirs as relative paths", () =>
    Effect.gen(function*() {
      const root = yield* tempDir
      const { until } = yield* watching(root)

      yield* fs(() => writeFile(join(root, "a.txt"), "one"))
      expect(yield* until(["a.txt"])).toContain("a.txt")

      yield* fs(() => appendFile(join(root, "a.txt"), " two"))
      yield* until(["a.txt"])

      yield* fs(() => rename(join(root, "a.txt"), join(root, "b.txt")))
      yield* until(["a.txt", "b.txt"])

      yield* fs(() => rm(join(root, "b.txt")))
      yield* until(["b.txt"])

      yield* fs(() => mkdir(join(root, "d", "e"), { recursive: true }))
      yield* fs(() => writeFile(join(root, "d", "e", "f.txt"), "nested"))
      // inotify may report only the new folder when its contents appear before the watch
      // on it is added: the consumer rescans new folders (SyncNode does), so `d` is the promise.
      const nested = yield* until(["d"])
      for (const p of nested) expect(p.startsWith("/"), p).toBe(false)
      // the watcher re-subscribes to cover the new folders, then asks for a full rescan
      yield* until([RESCAN_ALL])

      // A file in a directory that already existed before its watch was added.
      yield* fs(() => writeFile(join(root, "d", "e", "g.txt"), "later"))
      yield* until(["d/e/g.txt"])
    }).pipe(Effect.provide(WatcherParcel)), 30_000)

  it.scopedLive("never reports anything under .dsync/", () =>
    Effect.gen(function*() {
      const root = yield* tempDir
      yield* fs(() => mkdir(join(root, ".dsync")))
      const { until } = yield* watching(root)

      yield* fs(() => writeFile(join(root, ".dsync", "index.sqlite"), "x"))
      yield* fs(() => mkdir(join(root, ".dsync", "trash")))
      yield* fs(() => writeFile(join(root, "after.txt"), "y"))
      const seen = yield* until(["after.txt"])
      for (const p of seen) expect(p.startsWith(".dsync"), p).toBe(false)
    }).pipe(Effect.provide(WatcherParcel)), 30_000)

  it.scopedLive("a busy consumer loses nothing: every path changed meanwhile comes once in the next pulls", () =>
    Effect.gen(function*() {
      const root = yield* tempDir
      const watcher = yield* Watcher
      // Pull batches by hand: nothing is pulled while we write, like a busy consumer.
      const pull = yield* Stream.toPull(watcher.watch(root))
      const names = Array.from({ length: 40 }, (_, i) => `f${i}.txt`)
      // The first batch is empty and says the watch is in place: nothing after it is missed.
      const ready = yield* pull.pipe(Effect.timeout(WAIT))
      expect(Chunk.toReadonlyArray(ready)).toEqual([[]])

      for (const n of names) yield* fs(() => writeFile(join(root, n), "1"))
      for (const n of names) yield* fs(() => appendFile(join(root, n), "2"))
      yield* Effect.sleep(Duration.millis(500)) // let every event land while we are "busy"

      const got: Array<string> = []
      while (!names.every((n) => got.includes(n))) {
        const batch = yield* pull.pipe(Effect.timeoutFail({ duration: WAIT, onTimeout: () => new Error("timeout") }))
        got.push(...Chunk.toReadonlyArray(batch).flat())
      }
      const relevant = got.filter((p) => p !== "probe")
      expect(new Set(relevant).size).toBe(relevant.length) // each path once
      expect(relevant.sort()).toEqual([...names].sort())

      // Reported paths are not reported again: the next batch holds only the next change.
      yield* fs(() => writeFile(join(root, "last.txt"), "3"))
      const next = yield* pull.pipe(Effect.timeoutFail({ duration: WAIT, onTimeout: () => new Error("timeout") }))
      expect(Chunk.toReadonlyArray(next).flat()).toEqual(["last.txt"])
    }).pipe(Effect.provide(WatcherParcel)), 30_000)

  it.scopedLive("ends cleanly when the consumer stops, and fails with FsError for a missing folder", () =>
    Effect.gen(function*() {
      const root = yield* tempDir
      const watcher = yield* Watcher
      const fiber = yield* watcher.watch(root).pipe(Stream.take(1), Stream.runCollect, Effect.fork)
      yield* Effect.sleep(Duration.millis(300))
      yield* fs(() => writeFile(join(root, "x"), "1"))
      // Retry the write in case the subscription was not live yet.
      const result = yield* Fiber.join(fiber).pipe(
        Effect.timeout(Duration.seconds(1)),
        Effect.orElse(() =>
          fs(() => writeFile(join(root, "y"), "2")).pipe(Effect.zipRight(Fiber.join(fiber)), Effect.timeout(WAIT))
        )
      )
      expect(Chunk.size(result)).toBe(1)

      const error = yield* Effect.flip(watcher.watch(join(root, "missing")).pipe(Stream.runDrain, Effect.timeout(WAIT)))
      expect(error._tag).toBe("FsError")
    }).pipe(Effect.provide(WatcherParcel)), 30_000)
})
