import { describe, expect, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Fiber, TestClock } from "effect"
import * as Guard from "../src/layers/HandshakeGuardTokenBucket.js"
import { HandshakeGuard } from "../src/services/HandshakeGuard.js"

const config = { burst: 3, refillPerSecond: 1, maxInProgress: 2 }
const attempt = (guard: Guard.Api, host: string) => Effect.either(guard.guard(host, Effect.succeed("ok")))
const outcome = (guard: Guard.Api, host: string) =>
  Effect.map(attempt(guard, host), (e) => (e._tag === "Right" ? e.right : e.left))

describe("HandshakeGuard (token bucket)", () => {
  it.effect("allows a burst, then refuses with rate-limited without running the handshake", () =>
    Effect.gen(function*() {
      const guard = yield* Guard.make(config)
      for (let i = 0; i < 3; i++) expect(yield* outcome(guard, "10.0.0.1")).toBe("ok")
      let ran = false
      const refused = yield* Effect.either(guard.guard("10.0.0.1", Effect.sync(() => (ran = true))))
      expect(refused).toMatchObject({ _tag: "Left", left: "rate-limited" })
      expect(ran).toBe(false)
    }))

  it.effect("refills over time", () =>
    Effect.gen(function*() {
      const guard = yield* Guard.make(config)
      for (let i = 0; i < 3; i++) yield* outcome(guard, "h")
      expect(yield* outcome(guard, "h")).toBe("rate-limited")
      yield* TestClock.adjust(Duration.millis(999))
      expect(yield* outcome(guard, "h")).toBe("rate-limited")
      yield* TestClock.adjust(Duration.millis(1))
      expect(yield* outcome(guard, "h")).toBe("ok")
      expect(yield* outcome(guard, "h")).toBe("rate-limited")
      // Never more than the burst, however long the wait.
      yield* TestClock.adjust(Duration.hours(1))
      for (let i = 0; i < 3; i++) expect(yield* outcome(guard, "h")).toBe("ok")
      expect(yield* outcome(guard, "h")).toBe("rate-limited")
    }))

  it.effect("separate IPs have separate buckets", () =>
    Effect.gen(function*() {
      const guard = yield* Guard.make(config)
      for (let i = 0; i < 3; i++) yield* outcome(guard, "a")
      expect(yield* outcome(guard, "a")).toBe("rate-limited")
      for (let i = 0; i < 3; i++) expect(yield* outcome(guard, "b")).toBe("ok")
      expect(yield* outcome(guard, "b")).toBe("rate-limited")
    }))

  it.effect("forgets refilled IPs so the table stays bounded", () =>
    Effect.gen(function*() {
      const guard = yield* Guard.make(config, 10)
      for (let i = 0; i < 10; i++) yield* outcome(guard, `h${i}`)
      expect(guard.trackedHosts()).toBe(10)
      yield* TestClock.adjust(Duration.seconds(1)) // each spent 1 token: full again
      yield* outcome(guard, "new")
      expect(guard.trackedHosts()).toBe(1)
      // Even when nobody has refilled, the table never exceeds its bound.
      for (let i = 0; i < 50; i++) yield* outcome(guard, `flood${i}`)
      expect(guard.trackedHosts()).toBeLessThanOrEqual(10)
    }))

  it.effect("caps handshakes in progress and frees slots on success, failure and interruption", () =>
    Effect.gen(function*() {
      const guard = yield* Guard.make({ burst: 100, refillPerSecond: 1, maxInProgress: 2 })
      const gate1 = yield* Deferred.make<void, string>()
      const gate2 = yield* Deferred.make<void, string>()
      const f1 = yield* Effect.fork(Effect.either(guard.guard("a", Deferred.await(gate1))))
      const f2 = yield* Effect.fork(Effect.either(guard.guard("b", Deferred.await(gate2))))
      yield* Effect.yieldNow()
      expect(guard.inProgress()).toBe(2)
      expect(yield* outcome(guard, "c")).toBe("too-many-handshakes")

      yield* Deferred.succeed(gate1, undefined) // success frees a slot
      yield* Fiber.join(f1)
      expect(guard.inProgress()).toBe(1)
      const f3 = yield* Effect.fork(guard.guard("c", Effect.never))
      yield* Effect.yieldNow()
      expect(yield* outcome(guard, "d")).toBe("too-many-handshakes")

      yield* Deferred.fail(gate2, "boom") // failure frees a slot
      expect(yield* Fiber.join(f2)).toMatchObject({ _tag: "Left", left: "boom" })
      expect(yield* outcome(guard, "d")).toBe("ok")

      yield* Fiber.interrupt(f3) // interruption frees a slot
      expect(guard.inProgress()).toBe(0)
      expect(yield* outcome(guard, "e")).toBe("ok")
    }))

  it.effect("the layer provides the service with the default config", () =>
    Effect.gen(function*() {
      const guard = yield* HandshakeGuard
      for (let i = 0; i < 10; i++) expect(yield* Effect.either(guard.guard("x", Effect.void))).toMatchObject({ _tag: "Right" })
      expect(yield* Effect.either(guard.guard("x", Effect.void))).toMatchObject({ _tag: "Left", left: "rate-limited" })
    }).pipe(Effect.provide(Guard.layer())))
})
