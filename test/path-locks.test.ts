import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { describe, expect, it } from "vitest"
import * as Duration from "effect/Duration"
import { makePathLocks } from "../src/lib/PathLocks.js"

const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromise(effect)

/** Is `fiber` still waiting after everything runnable has run? */
const stillWaiting = <A, E>(fiber: Fiber.RuntimeFiber<A, E>) =>
  Effect.zipRight(Effect.yieldNow({ priority: 0 }).pipe(Effect.repeatN(20)), Effect.map(Fiber.poll(fiber), (exit) => exit._tag === "None"))

describe("path locks", () => {
  it("a batch waits for any of its paths held elsewhere; disjoint batches do not wait", () =>
    run(Effect.gen(function*() {
      const locks = makePathLocks()
      const letGo = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(locks.withPaths(["a", "b"])(Deferred.await(letGo)))
      yield* Effect.yieldNow()
      const overlapping = yield* Effect.fork(locks.withPaths(["c", "b"])(Effect.succeed("ran")))
      const disjoint = yield* Effect.fork(locks.withPaths(["c", "d"])(Effect.succeed("ran")))
      expect(yield* Fiber.join(disjoint)).toBe("ran")
      expect(yield* stillWaiting(overlapping)).toBe(true)
      yield* Deferred.succeed(letGo, undefined)
      yield* Fiber.join(holder)
      expect(yield* Fiber.join(overlapping)).toBe("ran")
    })))

  it("holds nothing while waiting: a batch waiting for one path leaves its other paths free", () =>
    run(Effect.gen(function*() {
      const locks = makePathLocks()
      const letGo = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(locks.withPath("b")(Deferred.await(letGo)))
      yield* Effect.yieldNow()
      const waiting = yield* Effect.fork(locks.withPaths(["a", "b"])(Effect.void))
      expect(yield* stillWaiting(waiting)).toBe(true)
      // "a" is not held by the waiting batch: taken at once
      expect(yield* locks.withPath("a")(Effect.succeed(1))).toBe(1)
      yield* Deferred.succeed(letGo, undefined)
      yield* Fiber.join(holder)
      yield* Fiber.join(waiting)
    })))

  it("crossed batches never deadlock, and each path has one holder at a time", () =>
    run(Effect.gen(function*() {
      const locks = makePathLocks()
      const inside = new Map<string, number>()
      let overlaps = 0
      const use = (paths: ReadonlyArray<string>) =>
        locks.withPaths(paths)(Effect.gen(function*() {
          for (const p of paths) if ((inside.get(p) ?? 0) > 0) overlaps++
          paths.forEach((p) => inside.set(p, (inside.get(p) ?? 0) + 1))
          yield* Effect.yieldNow()
          paths.forEach((p) => inside.set(p, inside.get(p)! - 1))
        }))
      const batches = Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? ["x", "y", `z${i % 7}`] : [`z${i % 7}`, "y", "x"]))
      yield* Effect.forEach(batches, use, { concurrency: "unbounded", discard: true }).pipe(
        Effect.timeoutFail({ duration: Duration.seconds(10), onTimeout: () => new Error("deadlock") })
      )
      expect(overlaps).toBe(0)
    })))

  it("an interrupted wait takes nothing and leaves its queue: the paths are free afterwards", () =>
    run(Effect.gen(function*() {
      const locks = makePathLocks()
      const letGo = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(locks.withPath("a")(Deferred.await(letGo)))
      yield* Effect.yieldNow()
      const ran: Array<string> = []
      const waiting = yield* Effect.fork(locks.withPaths(["a", "b"])(Effect.sync(() => ran.push("interrupted one"))))
      expect(yield* stillWaiting(waiting)).toBe(true)
      yield* Fiber.interrupt(waiting)
      yield* Deferred.succeed(letGo, undefined)
      yield* Fiber.join(holder)
      // neither path is left held by the interrupted batch
      const again = yield* Effect.fork(locks.withPaths(["a", "b"])(Effect.sync(() => ran.push("later one"))))
      expect(yield* stillWaiting(again)).toBe(false)
      expect(ran).toEqual(["later one"])
    })))

  it("a failing or interrupted holder lets its paths go", () =>
    run(Effect.gen(function*() {
      const locks = makePathLocks()
      yield* Effect.either(locks.withPaths(["a", "b"])(Effect.fail("boom")))
      const holder = yield* Effect.fork(locks.withPaths(["a", "b"])(Effect.never))
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(holder)
      expect(yield* locks.withPaths(["b", "a"])(Effect.succeed("free"))).toBe("free")
    })))
})

